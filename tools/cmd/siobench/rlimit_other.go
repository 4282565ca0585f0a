//go:build !unix

package main

import "errors"

// raiseNoFile is a no-op where there is no RLIMIT_NOFILE.
func raiseNoFile() (cur, max uint64, err error) { return 0, 0, errors.ErrUnsupported }
