//go:build !linux

package gateway

import "errors"

// register fails where there is no poller: each websocket then has a
// goroutine that waits in its read.
func (s *streamConn) register() error { return errors.ErrUnsupported }

func (s *streamConn) arm() error { return errors.ErrUnsupported }

func (s *streamConn) unregister() {}
