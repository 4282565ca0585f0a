//go:build !linux

package gateway

import "errors"

// register fails where there is no poller: each websocket then has a
// goroutine that waits in its read.
func (s *stream) register() error { return errors.ErrUnsupported }

func (s *stream) arm() error { return errors.ErrUnsupported }

func (s *stream) unregister() {}
