package gateway

import (
	"context"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// heartbeatWheel sends 2:: to every streaming connection held here once per
// heartbeat interval (and ends connections silent for the heartbeat
// timeout, see streamConn.heartbeat), from one goroutine for all of them
// instead of a timer per connection: a wheel (wheel.go), so a connection's
// first heartbeat comes one interval (less at most one tick) after it
// opened and then every interval, holding a connection allocates nothing
// (its links are streamConn's hb fields), and the goroutine runs only while
// connections are held.
type heartbeatWheel struct {
	conns wheel[*streamConn]

	// check, if set, is given each slot's connections after their
	// heartbeats (Gateway.queueSessionCheck); it must not block.
	check func([]*streamConn)
}

// wheelLinks gives the heartbeat wheel streamConn's hb fields.
func (s *streamConn) wheelLinks() (prev, next **streamConn, slot *int, held *bool) {
	return &s.hbPrev, &s.hbNext, &s.hbSlot, &s.hbLinked
}

// add registers s for heartbeats every interval.
func (w *heartbeatWheel) add(s *streamConn, interval time.Duration) {
	if w.conns.add(s) {
		go w.conns.turn(interval, w.sendHeartbeats)
	}
}

// remove unregisters s; it is a no-op for a connection not registered.
func (w *heartbeatWheel) remove(s *streamConn) { w.conns.remove(s) }

// sendHeartbeats queues 2:: to the connections of one slot (on the wheel's
// goroutine) and hands them to check.
func (w *heartbeatWheel) sendHeartbeats(due []*streamConn) {
	now := time.Now().UnixNano()
	for _, s := range due {
		s.heartbeat(now)
	}
	if w.check != nil {
		w.check(due)
	}
}

// Heartbeat timeout: every streaming transport (websocket, flashsocket,
// htmlfile) ends a client silent for Config.HeartbeatTimeout with reason
// heartbeat_timeout, measured from its last sign of life (streamConn.lastRead).
//
// What counts as a sign of life: anything the client sends on the session,
// not only the heartbeat answer 2::. On a websocket or flashsocket that is
// any frame read (websocket.go). An htmlfile client sends nothing on its
// stream: it POSTs its packets, heartbeat answers included, and behind a
// round-robin balancer a POST reaches any gateway. So a POST counts, on
// whichever gateway it lands: the POST's Touch script records the time in
// the session hash (field lh, see pkg/session), and a POST that lands on
// the holding gateway also notes it locally (servePost).
//
// The reference (socket.io 0.9.19, lib/transport.js) counts only 2::
// (onMessage: a heartbeat packet clears the timeout, from any transport's
// POST too), and starts the timeout when it sends a heartbeat, so a silent
// client is ended an interval plus the timeout after its last answer
// (about 4 s with a 1 s interval and a 3 s timeout); we end it the timeout
// after its last sign of life (3 s). Counting every packet changes nothing
// for the official client, which answers every heartbeat; it keeps one
// rule for every transport (a websocket's lastRead has always moved on
// every frame), and a client that is sending is plainly there.
//
// Pull, not push. The holder learns of POSTs that reached other gateways
// by reading lh (Store.LastHeard, one HGET) only for an htmlfile connection
// that looks silent locally, at the moment its timeout would pass: with
// its heartbeats answered through other gateways, at most one read per
// connection per heartbeat interval (one every 2 s measured with a 1 s interval
// and a 3 s timeout, TestStreamingHeartbeatTimeout; one every 50 s at the
// defaults), none for a connection whose POSTs reach its own gateway, and one
// before ending a silent client. Pushing each POST to the holder instead
// would cost a publish and a route message per POST (every emit of the
// client) and a new route op. The lh write is one HSET inside the Touch
// script every POST already runs: 0.43 µs of Redis time (INFO
// commandstats, about 1 µs with the Lua call), against 40 to 55 µs of
// Redis CPU for the whole script and its round trip (BenchmarkTouchStream
// in pkg/session, on a loaded 2-core machine, where with and without the
// HSET could not be told apart). Times in lh are the POSTing gateway's clock: like the session
// deadlines, this assumes the gateways' clocks agree to well under a
// second.
//
// A lookup that fails, or that Redis answers only after
// heartbeatLookupSlow (Redis stalled, and POSTs stalled with it may not be
// recorded yet, so its answer may be stale), is not silence: the connection is
// given another full heartbeat timeout from then, counted in
// realtime_gateway_heartbeat_lookups_total{result="unknown"} (and a
// failure in realtime_gateway_redis_errors_total{op="heartbeat"}) and
// logged. So a Redis outage or pause does not end every htmlfile session
// at once when it is over (their heartbeat answers were refused or held
// up meanwhile). A client that is really gone is ended a heartbeat timeout
// after Redis answers in time again; while Redis does not, a silent
// htmlfile connection stays open (its session could not be ended in Redis
// anyway).
//
// The checks never run on the wheel's goroutine: the wheel only schedules
// one (hbCheck: at most one scheduled or running per connection) with
// time.AfterFunc, whose function runs on its own goroutine.

// heartbeatLookupTimeout bounds the Redis read of an htmlfile session's
// last-heard time.
const heartbeatLookupTimeout = 5 * time.Second

// heartbeatLookupSlow is how long that read may take before its answer is
// taken as unknown rather than as the truth (Redis answers it in well under
// a millisecond unless something held it up).
const heartbeatLookupSlow = time.Second

// heartbeat is called by the wheel once per heartbeat interval: it queues
// 2:: and, for a connection silent for so long that the heartbeat timeout
// passes before the next call, schedules checkSilence for that moment. A
// websocket already silent that long is ended at once (this also ends a
// read waiting for the rest of a frame that never comes). A client that
// answers heartbeats never needs the check.
func (s *streamConn) heartbeat(now int64) {
	left := s.lastRead.Load() + int64(s.g.cfg.HeartbeatTimeout) - now
	if left <= 0 && !s.heardElsewhere() {
		s.closeLocal(bus.ReasonHeartbeatTimeout)
		return
	}
	if left < int64(s.g.cfg.HeartbeatInterval) && s.hbCheck.CompareAndSwap(false, true) {
		time.AfterFunc(time.Duration(max(left, 0)), s.checkSilence)
	}
	s.send("2::")
}

// checkSilence runs when the connection's heartbeat timeout may have passed
// (never on the wheel's goroutine): it ends a connection silent for the
// heartbeat timeout, for htmlfile after reading when the client was last
// heard by any gateway; a connection heard from meanwhile whose timeout passes
// before the next heartbeat is checked again then.
func (s *streamConn) checkSilence() {
	select {
	case <-s.finished:
		s.hbCheck.Store(false)
		return
	default:
	}
	timeout := s.g.cfg.HeartbeatTimeout
	if s.heardElsewhere() && s.silence() >= timeout {
		s.lookUpHeard()
	}
	switch left := timeout - s.silence(); {
	case left <= 0:
		s.g.log.Debug("heartbeat timeout", "sid", session.LogSID(s.sid), "transport", s.transport)
		s.closeLocal(bus.ReasonHeartbeatTimeout)
	case left < s.g.cfg.HeartbeatInterval:
		time.AfterFunc(left, s.checkSilence) // hbCheck stays set
		return
	}
	s.hbCheck.Store(false)
}

// heardElsewhere reports whether the connection's client shows signs of
// life to other gateways too: an htmlfile client POSTs to any of them.
func (s *streamConn) heardElsewhere() bool { return s.transport == TransportHTMLFile }

// silence is how long ago the connection's client was last heard (as known
// here).
func (s *streamConn) silence() time.Duration {
	return time.Duration(time.Now().UnixNano() - s.lastRead.Load())
}

// lookUpHeard reads when a POST of the session last reached any gateway
// and takes it as the connection's last sign of life if it is newer; a read
// that failed or was slow counts as a sign of life now (see the heartbeat
// timeout notes above).
func (s *streamConn) lookUpHeard() {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatLookupTimeout)
	at, err := s.g.store.LastHeard(ctx, s.sid)
	cancel()
	if took := time.Since(start); err != nil || took > heartbeatLookupSlow {
		if err != nil {
			s.g.metrics.RedisErrors.WithLabelValues("heartbeat").Inc()
		}
		s.g.metrics.HeartbeatLookups.WithLabelValues("unknown").Inc()
		s.g.log.Warn("htmlfile client's last sign of life unknown (Redis failed or stalled); it gets another heartbeat timeout",
			"sid", session.LogSID(s.sid), "took", took, "err", err)
		s.heard(time.Now())
		return
	}
	s.heard(at)
	result := "heard"
	if s.silence() >= s.g.cfg.HeartbeatTimeout {
		result = "silent"
	}
	s.g.metrics.HeartbeatLookups.WithLabelValues(result).Inc()
}

// heard records a sign of life at t; lastRead never moves back.
func (s *streamConn) heard(t time.Time) {
	if t.IsZero() {
		return
	}
	ns := t.UnixNano()
	for {
		old := s.lastRead.Load()
		if ns <= old || s.lastRead.CompareAndSwap(old, ns) {
			return
		}
	}
}
