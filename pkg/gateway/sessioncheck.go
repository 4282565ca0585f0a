package gateway

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Held streams whose session vanished. A streaming connection held here
// lives as long as its client answers heartbeats, whatever happened to its
// session in Redis. If the session record disappears without the route
// message that ends a session (FLUSHALL, Redis restarted without its data,
// a key evicted), the connection would stay open for ever while every
// packet the client sends is refused by the session scripts (and so never
// answered). So the heartbeat wheel hands every slot it serves to
// checkSessions, which asks Redis, off the wheel's goroutine, whether the
// sessions still exist: one pipelined EXISTS per slot, so each held stream
// is checked once per heartbeat interval. A connection whose session is gone
// (asked twice, sessionGoneGrace apart, so a session just ended elsewhere is
// closed by its route message rather than here) has its transport closed
// without 0:: (the 0.9 client treats 0:: as final; a closed transport makes
// it reconnect and handshake anew), within one heartbeat interval plus
// sessionGoneGrace of the session's disappearance. Each closed connection
// is counted in realtime_gateway_streams_orphaned_total; one log line per
// heartbeat interval at most says how many.
//
// Cost: one EXISTS per held stream per heartbeat interval, in
// wheelSlots pipelines per interval whatever the number of streams:
// 3 to 5 µs of Redis CPU per call measured (INFO commandstats usec_per_call
// of exists in TestStreamSessionVanished, 12 calls on a loaded 2-core
// machine: an upper bound), so at most 0.2 µs per held stream per second at
// the default 25 s interval. A check that fails (Redis down or stalled past
// sessionCheckTimeout) closes nothing and is counted in
// realtime_gateway_redis_errors_total{op="session_check"}.

// sessionGoneGrace is how long after finding a session missing the gateway
// asks again before closing its connection: an ended session's route
// message is published by the same script that deletes the record, so it
// arrives within this unless the gateway is badly overloaded.
const sessionGoneGrace = 200 * time.Millisecond

// sessionCheckTimeout bounds one check's round trip to Redis.
const sessionCheckTimeout = 2 * time.Second

// queueSessionCheck hands a copy of the connections of one wheel slot to the
// checker; when the checker is behind (Redis slow), the slot is checked at
// its next turn instead. It never blocks (it runs on the wheel's goroutine).
func (g *Gateway) queueSessionCheck(due []*streamConn) {
	if len(due) == 0 {
		return
	}
	select {
	case g.sessionChecks <- append([]*streamConn(nil), due...):
	default:
	}
}

// sessionCheckLoop runs the checks the wheel queues until ctx ends.
func (g *Gateway) sessionCheckLoop(ctx context.Context) {
	defer g.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case conns := <-g.sessionChecks:
			g.checkSessions(ctx, conns)
		}
	}
}

// checkSessions closes the connections among conns whose session record is
// gone from Redis (asked twice, sessionGoneGrace apart).
func (g *Gateway) checkSessions(ctx context.Context, conns []*streamConn) {
	gone := g.missingSessions(ctx, conns)
	if len(gone) == 0 {
		return
	}
	select {
	case <-time.After(sessionGoneGrace):
	case <-ctx.Done():
		return
	}
	gone = g.missingSessions(ctx, gone)
	closed := 0
	for _, s := range gone {
		s.mu.Lock()
		first := s.stopLocked("", true, "")
		s.mu.Unlock()
		if first {
			closed++
		}
	}
	if closed == 0 {
		return
	}
	g.metrics.StreamsOrphaned.Add(float64(closed))
	if ok, skipped := g.orphanLog.Allow(time.Now(), g.cfg.HeartbeatInterval); ok {
		g.log.Warn("streaming connections closed: their sessions are gone from Redis (flushed, or restarted without its data); their clients reconnect",
			"closed", closed, "earlier_checks_not_logged", skipped)
	}
}

// missingSessions returns the connections among conns, still open, whose
// session record does not exist; nil when Redis could not be asked.
func (g *Gateway) missingSessions(ctx context.Context, conns []*streamConn) []*streamConn {
	open := conns[:0:0]
	for _, s := range conns {
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if !stopped {
			open = append(open, s)
		}
	}
	return sessionsGone(ctx, g, open, func(s *streamConn) string { return s.sid })
}

// sessionsGone returns the elements of xs whose session record (of session
// id sid(x)) does not exist, asking Redis with one pipeline of EXISTS
// bounded by sessionCheckTimeout; nil when xs is empty or Redis could not be
// asked (counted in realtime_gateway_redis_errors_total{op="session_check"}
// unless ctx was canceled). The checks of held streams (missingSessions)
// and of parked polls (vanishedPolls) ask it.
func sessionsGone[T any](ctx context.Context, g *Gateway, xs []T, sid func(T) string) []T {
	if len(xs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, sessionCheckTimeout)
	defer cancel()
	cmds := make([]*redis.IntCmd, len(xs))
	_, err := g.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, x := range xs {
			cmds[i] = pipe.Exists(ctx, g.cfg.Keys.Session(sid(x)))
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil || ctx.Err() == context.DeadlineExceeded {
			g.metrics.RedisErrors.WithLabelValues("session_check").Inc()
		}
		return nil
	}
	var gone []T
	for i, x := range xs {
		if cmds[i].Val() == 0 {
			gone = append(gone, x)
		}
	}
	return gone
}
