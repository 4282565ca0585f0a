package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ServeFlashPolicy answers Flash socket policy requests on l until ctx ends:
// it writes the policy for the origins allow-list (followed by a NUL) as
// soon as a client connects, as the reference does, then closes.
func (g *Gateway) ServeFlashPolicy(ctx context.Context, l net.Listener) error {
	policy := append(flashPolicy(g.cfg.Origins), 0)
	go func() {
		<-ctx.Done()
		_ = l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("gateway: flash policy accept: %w", err)
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write(policy)
		}()
	}
}
