//go:build !linux

package wsengine

import "errors"

// register fails where there is no poller: each connection then has a
// goroutine that waits in its read.
func (c *Conn) register() error { return errors.ErrUnsupported }

func (c *Conn) arm() error { return errors.ErrUnsupported }

func (c *Conn) unregister() {}
