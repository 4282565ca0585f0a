package gateway

import (
	"context"
	"time"

	"github.com/realtime/realtime/pkg/bus"
)

// aliveLoop renews this gateway's liveness key every AliveTTL/3 (other
// gateways reap its sessions once it expires) and times a PING for the
// Redis round-trip metric.
func (g *Gateway) aliveLoop(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.AliveTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			if err := g.rdb.Ping(ctx).Err(); err == nil {
				g.metrics.RedisRTT.Observe(time.Since(start).Seconds())
			}
			if err := g.store.Alive(ctx, g.cfg.AliveTTL); err != nil && ctx.Err() == nil {
				g.metrics.RedisErrors.WithLabelValues("alive").Inc()
				g.log.Warn("liveness key not renewed", "err", err)
			}
		}
	}
}

// reapLoop, every ReapInterval, ends the sessions whose deadline passed
// (reason timeout) and the sessions of dead gateways (gateway_lost), 500
// at a time, and updates the cluster's session counts.
func (g *Gateway) reapLoop(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.ReapInterval)
	defer t.Stop()
	const limit = 500
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := g.store.ReapDeadlines(ctx, limit)
			if err != nil {
				if ctx.Err() == nil {
					g.metrics.RedisErrors.WithLabelValues("reap").Inc()
					g.log.Warn("reaping expired sessions failed", "err", err)
				}
				break
			}
			if n > 0 {
				g.metrics.disconnected(bus.ReasonTimeout, n)
				g.log.Info("expired sessions ended", "count", n)
			}
			if n < limit {
				break
			}
		}
		if c, err := g.store.Counts(ctx); err == nil {
			g.metrics.Sessions.WithLabelValues("handshaken").Set(float64(c.Handshaken))
			g.metrics.Sessions.WithLabelValues("polling").Set(float64(c.Polling))
			g.metrics.Sessions.WithLabelValues("streaming").Set(float64(c.Streaming))
		}
		n, err := g.store.ReapGateways(ctx, limit)
		if err != nil && ctx.Err() == nil {
			g.metrics.RedisErrors.WithLabelValues("reap").Inc()
			g.log.Warn("reaping dead gateways failed", "err", err)
		}
		if n > 0 {
			g.metrics.disconnected(bus.ReasonGatewayLost, n)
			g.log.Warn("sessions of dead gateways ended", "count", n)
		}
	}
}
