package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// A gateway is reaped only once its liveness key was found gone by two
// reap rounds in a row (suspects): a live gateway renews its key at every
// interval, so one whose key a failover of Redis lost (the promoted replica
// missed its last renewals, or they ran down while Redis was away) renews
// it before the second round. TestRedisClusterFailoverUnderTraffic lost
// every websocket session of a live gateway without it.

// steadyRenewals is how many renewals in a row must have found the
// liveness key as a steady loop leaves it before this gateway reaps
// others: after a stall of Redis, every live gateway renews its key
// within a renewal interval, so none is taken for dead.
const steadyRenewals = 2

// aliveLoop renews this gateway's liveness key every AliveTTL/4 (other
// gateways reap its sessions once it expires), times a PING for the Redis
// round-trip metric, and, once its renewals are steady, ends the streaming
// sessions of gateways whose keys expired (reason gateway_lost), 500 per
// gateway per renewal.
//
// A renewal is steady when it took less than the interval and found the
// key with at least AliveTTL minus two intervals left (the previous
// renewal landed about an interval ago). A Redis stall long enough to let
// a live gateway's key expire breaks both, so this gateway waits for
// steadyRenewals steady renewals before it reaps, and its reap scripts
// check its own key again (session.Store.ReapGateways) in case the stall
// began after the renewal.
func (g *Gateway) aliveLoop(ctx context.Context) {
	defer g.wg.Done()
	every := g.cfg.AliveTTL / 4
	t := time.NewTicker(every)
	defer t.Stop()
	steady := 0
	var suspects []string // gateways whose keys the last reap round found gone
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if err := g.rdb.Ping(ctx).Err(); err == nil {
			g.metrics.RedisRTT.Observe(time.Since(start).Seconds())
		}
		left, err := g.store.Renew(ctx, g.cfg.AliveTTL)
		switch {
		case err != nil:
			steady, suspects = 0, nil
			if ctx.Err() == nil {
				g.metrics.RedisErrors.WithLabelValues("alive").Inc()
				g.log.Warn("liveness key not renewed", "err", err)
			}
			continue
		case time.Since(start) >= every || left < g.cfg.AliveTTL-2*every:
			steady, suspects = 0, nil
		default:
			steady++
		}
		if steady >= steadyRenewals {
			suspects = g.reapGateways(ctx, suspects, g.cfg.AliveTTL-2*every)
		}
	}
}

// reapGateways ends the streaming sessions of the gateways whose liveness
// keys are gone and were gone at the previous round too (suspects), unless
// this gateway's own liveness key has less than minLeft to live when the
// reap runs (a stall since the renewal). It returns the gateways whose
// keys are gone now, the next round's suspects.
func (g *Gateway) reapGateways(ctx context.Context, suspects []string, minLeft time.Duration) []string {
	const limit = 500
	expired, err := g.store.ExpiredGateways(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.metrics.RedisErrors.WithLabelValues("reap").Inc()
			g.log.Warn("reaping dead gateways failed", "err", err)
		}
		return nil
	}
	confirmed := slices.DeleteFunc(slices.Clone(expired), func(n string) bool { return !slices.Contains(suspects, n) })
	if len(confirmed) == 0 {
		return expired
	}
	n, err := g.store.ReapGatewaysOf(ctx, confirmed, limit, minLeft)
	switch {
	case errors.Is(err, session.ErrStalled):
		g.log.Info("dead gateways not reaped: Redis or this gateway stalled since the liveness renewal")
	case err != nil && ctx.Err() == nil:
		g.metrics.RedisErrors.WithLabelValues("reap").Inc()
		g.log.Warn("reaping dead gateways failed", "err", err)
	}
	if n > 0 {
		g.metrics.disconnected(bus.ReasonGatewayLost, n)
		g.log.Warn("sessions of dead gateways ended", "count", n, "gateways", confirmed)
	}
	return expired
}

// reapLoop, every ReapInterval, ends the sessions whose deadline passed
// (reason timeout; overflow for those a commit marked and did not end),
// 500 at a time per partition, and updates the cluster's session counts.
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
			r, err := g.store.ReapDeadlines(ctx, limit)
			if r.Timeout > 0 { // what it ended before an error too
				g.metrics.disconnected(bus.ReasonTimeout, r.Timeout)
				g.log.Info("expired sessions ended", "count", r.Timeout)
			}
			if r.Overflow > 0 {
				g.metrics.disconnected(bus.ReasonOverflow, r.Overflow)
				g.log.Info("sessions whose mailbox overflowed ended", "count", r.Overflow)
			}
			if err != nil {
				if ctx.Err() == nil {
					g.metrics.RedisErrors.WithLabelValues("reap").Inc()
					g.log.Warn("reaping expired sessions failed", "err", err)
				}
				break
			}
			if r.Total() < limit {
				break
			}
		}
		if c, err := g.store.Counts(ctx); err == nil {
			g.metrics.Sessions.WithLabelValues("handshaken").Set(float64(c.Handshaken))
			g.metrics.Sessions.WithLabelValues("polling").Set(float64(c.Polling))
			g.metrics.Sessions.WithLabelValues("streaming").Set(float64(c.Streaming))
		}
	}
}

// routeLoop reads the cluster's gateways into the store's route table every
// Config.RouteRefresh, and at once when a commit batch found it stale
// (refreshRoutesNow): the scripts of this gateway's commit batches declare
// the route keys of the gateways it lists (session.Store.RefreshRoutes).
func (g *Gateway) routeLoop(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.RouteRefresh)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.routesNow:
		}
		// Bounded, so that a Redis stall does not hold the loop (and the
		// refreshes of this gateway's scripts, which wait for it) for good.
		rctx, cancel := context.WithTimeout(ctx, max(g.cfg.RouteRefresh, time.Second))
		err := g.store.RefreshRoutes(rctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			g.metrics.RedisErrors.WithLabelValues("routes").Inc()
			if !failing {
				g.log.Warn("route table not refreshed", "err", err)
			}
			failing = true
		case err == nil && failing:
			g.log.Info("route table refreshed again")
			failing = false
		}
	}
}

// refreshRoutesNow asks routeLoop to read the route table at once; it
// never blocks.
func (g *Gateway) refreshRoutesNow() {
	select {
	case g.routesNow <- struct{}{}:
	default:
	}
}
