package gateway

import (
	"context"
	"time"

	"github.com/realtime/realtime/internal/ratelog"
)

// Parked polls whose session vanished. A poll parked here waits for a wake,
// a kick, the session's end (route messages) or the polling duration. When
// the session record disappears without the route message that ends a
// session (FLUSHALL, Redis restarted without its data, a key evicted), no
// message comes: the poll would be answered 8:: only after the polling
// duration (20 s by default) and only the poll after it would tell the
// client, while the 0.9 client, which ignores what its POSTs are answered
// (a POST to a session that is gone gets 7:::1+0), goes on posting into
// the void. So a poll parked here is answered as soon as this gateway
// learns that its session is gone:
//
//   - a POST of the session to this gateway finds it gone (the POST's
//     Touch script): the poll parked here for that session is answered at
//     once (found_by="post");
//   - every poll parked here is checked once per heartbeat interval, as
//     sessioncheck.go checks held streams: the poll wheel (pollWheel)
//     hands the polls of one of its wheelSlots slots per tick to a
//     checker goroutine, which sends one pipeline of EXISTS for them; a
//     session missing, and still missing sessionGoneGrace later (so a
//     session just ended elsewhere is answered by its route message, with
//     its 0:: if the app ended it), has its poll answered
//     (found_by="check"), within one heartbeat interval plus
//     sessionGoneGrace of the disappearance.
//
// Either way the poll runs its script again (session.Store.Poll), which
// answers for a session that is gone: 7:::1+0 (client not handshaken,
// reconnect; the protocol's answer to a transport request for an unknown
// session), on which the 0.9 client handshakes again; or the 0:: of a
// session the app ended, kept for its next poll. Each poll so answered
// is counted in realtime_gateway_polls_orphaned_total{found_by}, and one
// log line per found_by per heartbeat interval at most says how many.
//
// Cost: one EXISTS per parked poll per heartbeat interval, in at most
// wheelSlots pipelines per interval (none while no poll is parked);
// polls answered within an interval of parking, as under traffic, are
// never checked. The wheel's goroutine and its checker run only while
// polls are parked. A check that fails (Redis down or stalled past
// sessionCheckTimeout) answers nothing and is counted in
// realtime_gateway_redis_errors_total{op="session_check"}.

// Who found a parked poll's session gone: the found_by label of
// realtime_gateway_polls_orphaned_total.
const (
	goneByPost  = "post"
	goneByCheck = "check"
)

// pollWheel holds the polls parked here and hands one slot of them per tick
// to a checker, so that each parked poll's session is checked once per
// heartbeat interval: a wheel (wheel.go), so a poll's first check comes one
// interval (less at most one tick) after it parked, holding a poll
// allocates nothing (its links are pollWaiter's wheel fields), and the
// wheel's goroutine and its checker run only while polls are parked.
type pollWheel struct {
	polls wheel[*pollWaiter]

	postLog, checkLog ratelog.Limiter // the found_by log lines
}

// wheelLinks gives the poll wheel pollWaiter's wheel fields (polling.go).
func (p *pollWaiter) wheelLinks() (prev, next **pollWaiter, slot *int, held *bool) {
	return &p.prev, &p.next, &p.slot, &p.linked
}

// watchPoll registers a parked poll with the wheel, starting the wheel and
// its checker if it was idle.
func (g *Gateway) watchPoll(p *pollWaiter) {
	if g.pollWheel.polls.add(p) {
		checks := make(chan []*pollWaiter, wheelSlots)
		go g.pollCheckLoop(checks)
		go g.turnPollWheel(checks)
	}
}

// unwatchPoll unregisters a poll; a no-op for one not registered.
func (g *Gateway) unwatchPoll(p *pollWaiter) { g.pollWheel.polls.remove(p) }

// turnPollWheel turns the wheel until no poll is registered, handing a copy
// of the polls of one slot per tick to the checker (never blocking: when the
// checker is behind, Redis being slow, the slot is checked at its next
// turn); then it closes checks, which ends the checker.
func (g *Gateway) turnPollWheel(checks chan<- []*pollWaiter) {
	g.pollWheel.polls.turn(g.cfg.HeartbeatInterval, func(due []*pollWaiter) {
		select {
		case checks <- append([]*pollWaiter(nil), due...):
		default:
		}
	})
	close(checks)
}

// pollCheckLoop runs the checks the wheel hands over until it closes
// checks.
func (g *Gateway) pollCheckLoop(checks <-chan []*pollWaiter) {
	for due := range checks {
		g.checkPolls(due)
	}
}

// checkPolls answers the polls among due whose session record is gone from
// Redis (asked twice, sessionGoneGrace apart).
func (g *Gateway) checkPolls(due []*pollWaiter) {
	ctx := context.Background()
	gone := g.vanishedPolls(ctx, due)
	if len(gone) == 0 {
		return
	}
	time.Sleep(sessionGoneGrace)
	for _, p := range g.vanishedPolls(ctx, gone) {
		p.notifyAll(pollEvent{gone: goneByCheck})
	}
}

// vanishedPolls returns the polls among due, still parked, whose session
// record does not exist; nil when Redis could not be asked.
func (g *Gateway) vanishedPolls(ctx context.Context, due []*pollWaiter) []*pollWaiter {
	parked := g.pollWheel.polls.holding(due)
	return sessionsGone(ctx, g, parked, func(p *pollWaiter) string { return p.sid })
}

// sessionGoneForPolls is told by a POST that found session sid gone: the
// poll parked here for it, if any, is answered at once.
func (g *Gateway) sessionGoneForPolls(sid string) {
	if v, ok := g.polls.Load(sid); ok {
		v.(*pollWaiter).notifyAll(pollEvent{gone: goneByPost})
	}
}

// pollOrphaned counts and logs (at most once per heartbeat interval per
// found_by) a parked poll answered because its session was found gone.
func (g *Gateway) pollOrphaned(by, transport string) {
	g.metrics.PollsOrphaned.WithLabelValues(by).Inc()
	l := &g.pollWheel.checkLog
	if by == goneByPost {
		l = &g.pollWheel.postLog
	}
	if ok, skipped := l.Allow(time.Now(), g.cfg.HeartbeatInterval); ok {
		g.log.Warn("parked poll answered 7:::1+0 at once: its session is gone from Redis (flushed, or restarted without its data); the client handshakes again",
			"found_by", by, "transport", transport, "earlier_not_logged", skipped)
	}
}
