package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

type pollEvent struct {
	kick   bool   // a newer poll took over
	closed bool   // the session ended
	packet string // with closed: the last packet to write ("" none)
	gone   string // the session was found gone from Redis, by goneByPost or goneByCheck (pollcheck.go)
}

// pollWaiter is a poll parked on this gateway.
type pollWaiter struct {
	id  string
	sid string
	ch  chan pollEvent // buffered 1; events coalesce

	// goneBy is set by park when it was told the session is gone
	// (pollEvent.gone); only the request's goroutine touches it.
	goneBy string

	// offerMu guards offered, took and over. A packet a delivery took for
	// this poll (route O, docs/redis.md "Offered packets") waits in
	// offered until park answers with it (took); once the poll is over, or
	// replaced by a newer poll here, a packet offered to it is released
	// instead (releaseOffer).
	offerMu sync.Mutex
	offered *bus.Route
	took    bool
	over    bool

	// The poll wheel's list (pollcheck.go), guarded by its mutex.
	prev, next *pollWaiter
	slot       int
	linked     bool
}

func (p *pollWaiter) notify(id string, ev pollEvent) {
	if id != p.id {
		return
	}
	p.notifyAll(ev)
}

// offer hands the poll the packet of route O (r.Arg its poll id) and
// wakes it. It returns false when the packet is not for this poll or the
// poll is over: the caller must release it.
func (p *pollWaiter) offer(r bus.Route) bool {
	if r.Arg != p.id {
		return false
	}
	p.offerMu.Lock()
	if p.over {
		p.offerMu.Unlock()
		return false
	}
	p.offered = &r
	p.offerMu.Unlock()
	p.notifyAll(pollEvent{})
	return true
}

// takeOffer returns the packet offered to the poll, once.
func (p *pollWaiter) takeOffer() (session.PollReply, bool) {
	p.offerMu.Lock()
	defer p.offerMu.Unlock()
	r := p.offered
	if r == nil {
		return session.PollReply{}, false
	}
	p.offered, p.took = nil, true
	return session.PollReply{Result: session.PollAnswer, Packets: []string{r.Packet}, Owned: true,
		Routed: time.UnixMilli(r.Time), Depth: 1}, true
}

// replace ends a poll a newer one of its session replaces on this gateway.
// It reports whether the poll may own a packet offered to it that it
// never took, which the newer poll must release (Store.ReleaseOffer)
// before its own run: that run would take the packet for received (a new
// t) while this poll answers 8::. A poll that is over already answered
// through Redis, or with the packet it took.
func (p *pollWaiter) replace() bool {
	p.offerMu.Lock()
	defer p.offerMu.Unlock()
	if p.over || p.took {
		return false
	}
	p.over, p.offered = true, nil
	return true
}

// end marks the poll over and returns a packet offered to it and not
// taken, if any: it must be released.
func (p *pollWaiter) end() (bus.Route, bool) {
	p.offerMu.Lock()
	defer p.offerMu.Unlock()
	p.over = true
	r := p.offered
	p.offered = nil
	if r == nil {
		return bus.Route{}, false
	}
	return *r, true
}

func (p *pollWaiter) notifyAll(ev pollEvent) {
	select {
	case p.ch <- ev:
	default: // a wake is already pending; kicks, closes and gone sessions are rare and re-checked by the re-run
		if ev.kick || ev.closed || ev.gone != "" {
			select {
			case <-p.ch:
			default:
			}
			select {
			case p.ch <- ev:
			default:
			}
		}
	}
}

// servePoll handles a polling GET (xhr-polling, jsonp-polling).
func (g *Gateway) servePoll(w http.ResponseWriter, r *http.Request, transport, sid string) {
	q := r.URL.Query()
	index := "0"
	if transport == TransportJSONPPolling {
		if i := q.Get("i"); i != "" {
			if !protocol.ValidJSONPIndex(i) {
				g.reject(w, r, http.StatusBadRequest, rejectBadJSONPIndex, "bad jsonp index")
				return
			}
			index = i
		}
	}
	t := q.Get("t")
	waiter := &pollWaiter{id: strconv.FormatUint(g.pollSeq.Add(1), 10), sid: sid, ch: make(chan pollEvent, 1)}
	// Only one poll per session can be parked here at a time: a newer one
	// replaces the older one's registration and answers it 8:: at once
	// (Redis's kick for it, published by the newer poll's script, would
	// find only the newer one here).
	ctx := r.Context()
	if v, loaded := g.polls.Swap(sid, waiter); loaded {
		prev := v.(*pollWaiter)
		replaced := prev.replace()
		prev.notifyAll(pollEvent{kick: true})
		// A packet offered to the replaced poll goes back to the mailbox
		// before this poll's run, which would otherwise take it for
		// received. If Redis does not answer, this poll cannot know what
		// it may take: 503, and the client starts a new session.
		if replaced && !g.releaseUntilAnswered(ctx, sid, func(ctx context.Context) error { return g.store.ReleaseOffer(ctx, sid, prev.id) }) {
			g.polls.CompareAndDelete(sid, waiter)
			g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
			return
		}
	}
	defer g.polls.CompareAndDelete(sid, waiter)

	reply, err := g.store.Poll(ctx, sid, transport, waiter.id, t, false)
	if err == nil && reply.Result == session.PollParked {
		if reply.OnStream {
			// The 0.9 client falls back to polling when its websocket (or
			// htmlfile) did not connect in time, with the same sid; here
			// that stream still looks open. The poll waits (as the
			// reference's does) instead of being answered at once, which
			// the client would repeat in a hot loop.
			g.rejected(rejectPollOnStream, "transport", transport, "sid", session.LogSID(sid))
		}
		g.metrics.Connections.WithLabelValues(transport).Inc()
		g.held.Add(1)
		g.watchPoll(waiter) // its session checked every heartbeat interval (pollcheck.go)
		reply, err = g.park(ctx, waiter, sid, transport, t, reply)
		g.unwatchPoll(waiter)
		g.held.Add(-1)
		g.metrics.Connections.WithLabelValues(transport).Dec()
	}
	if left, ok := waiter.end(); ok && (err != nil || !reply.Owned) {
		g.releaseOffer(left)
	}
	packets := reply.Packets
	reason, refusal, refused := sessionRefusal(err)
	switch {
	case refused:
		g.rejected(reason, "transport", transport, "sid", session.LogSID(sid))
		if waiter.goneBy != "" && errors.Is(err, session.ErrUnknownSession) {
			g.pollOrphaned(waiter.goneBy, transport)
		}
		packets = []string{refusal}
	case err != nil && ctx.Err() != nil:
		// The client went away (go-redis may report a command it gave up
		// on as a network error rather than context.Canceled). A poll
		// script whose reply was abandoned may still have taken a batch
		// for this poll: give it back (a no-op unless this poll owns the
		// batch in flight).
		g.settle(sid, waiter.id, false)
		g.pollAborted(sid, transport)
		return
	case err != nil:
		// Redis is unreachable or stalled. The poll script may still run
		// (a timed-out command waits in Redis's socket, and go-redis sends
		// it again on a new connection), taking a batch this answer does
		// not carry, which the client's next poll, with its new
		// cache-buster, would trim as received. So the poll is released
		// first (releaseUntilAnswered); once it is, a noop keeps the client polling
		// (a non-200 answer would make it drop the session), after a pause.
		// If it cannot be, the session's packets may be lost with it: a
		// 503 makes the client drop the session and reconnect, which it
		// sees.
		g.metrics.RedisErrors.WithLabelValues("poll").Inc()
		g.log.Warn("poll failed", "sid", session.LogSID(sid), "err", err)
		if !g.releaseUntilAnswered(ctx, sid, func(ctx context.Context) error { return g.store.Release(ctx, sid, waiter.id) }) {
			g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
			return
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
		packets = []string{"8::"}
	case reply.Result != session.PollAnswer:
		packets = []string{"8::"}
	}
	if len(packets) > 0 && packets[0] != "8::" {
		if reply.Depth > 0 {
			g.metrics.MailboxDepth.Observe(float64(reply.Depth))
		}
		g.metrics.MailboxDrain.Observe(float64(len(packets)))
	}
	written := g.writePoll(w, r, transport, index, packets)
	if err == nil && reply.Owned {
		g.settle(sid, waiter.id, written)
	}
	if err == nil && !reply.Routed.IsZero() {
		g.observeDelivery(routeMailbox, reply.Routed.UnixMilli())
	}
}

// settle confirms the batch a poll answered with once the answer was
// written whole (session.Store.Poll: this is how a later poll with the same
// cache-buster is told from a retry), or releases it when the write failed,
// so that the client's retry gets it again at once. The confirmation (one
// SET) rides the committer's batches, in order with the session's other
// writes; a lost one costs at most a duplicate, after
// session.Config.BatchConfirmWait.
func (g *Gateway) settle(sid, pollID string, written bool) {
	if !written {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.store.Release(ctx, sid, pollID); err != nil {
			g.metrics.RedisErrors.WithLabelValues("poll").Inc()
			g.log.Warn("poll batch not released", "sid", session.LogSID(sid), "err", err)
		}
		return
	}
	ch, err := g.committer.CommitAsync(context.Background(), sid, g.store.ConfirmWrite(sid, pollID))
	if err != nil {
		return // shutting down: the next poll's new cache-buster trims the batch
	}
	go func() {
		if err := <-ch; err != nil {
			g.log.Warn("poll batch not confirmed; a poll with the same cache-buster gets it again", "sid", session.LogSID(sid), "err", err)
		}
	}()
}

// pollAborted ends a session whose client closed its poll before the
// answer: a 0.9 client never does that and goes on with the session. Its
// xhr-polling and jsonp-polling transports abort a poll only when they
// close (socket.io-client 0.9.16 transports/xhr-polling.js onClose), and a
// poll that fails makes the client drop the session and handshake anew
// (transport.js onClose, then socket.js onDisconnect and reconnect); a
// poll is also cut when its page is closed or reloaded, and browsers drop
// the page's own ?disconnect beacon now and then. Ending the session now
// (reason transport_close, as for a closed websocket), not after the close
// timeout, takes such a page's user out of the others' lists at once.
func (g *Gateway) pollAborted(sid, transport string) {
	ch, err := g.committer.CommitAsync(context.Background(), sid, g.store.EndWrite(sid, bus.ReasonTransportClose, ""))
	if err != nil {
		return // shutting down: the session expires after the close timeout
	}
	g.log.Debug("poll closed by its client: session ended", "sid", session.LogSID(sid), "transport", transport)
	go func() {
		if err := <-ch; err != nil {
			g.metrics.RedisErrors.WithLabelValues("disconnect").Inc()
			g.log.Warn("session of an aborted poll not ended; it ends after the close timeout", "sid", session.LogSID(sid), "err", err)
			return
		}
		g.metrics.disconnected(bus.ReasonTransportClose, 1)
	}()
}

// AbandonWait bounds how long a poll whose script failed, or that
// replaced a poll holding an offered packet, tries to release it
// (releaseUntilAnswered) before it answers 503.
const AbandonWait = 10 * time.Second

// releaseUntilAnswered runs release (Store.Release of a poll whose script
// failed, Store.ReleaseOffer of a replaced one), trying again (on timeouts
// too: a release runs safely twice) until Redis answers, AbandonWait passes
// or the client leaves; it reports whether Redis answered. Released, a
// poll's script takes nothing if Redis runs it later, and a batch it took
// (or a packet offered to it) is delivered to the next poll.
func (g *Gateway) releaseUntilAnswered(ctx context.Context, sid string, release func(context.Context) error) bool {
	ctx, cancel := context.WithTimeout(ctx, AbandonWait)
	defer cancel()
	always := func(error) bool { return true }
	if err := retryWhile(ctx, always, func() error { return release(ctx) }); err != nil {
		g.log.Warn("poll not released; answered 503, its client reconnects", "sid", session.LogSID(sid), "err", err)
		return false
	}
	return true
}

// park waits for a wake, a packet offered to the poll, a kick, the
// session's end or the polling duration; first is the poll's first reply
// (parked). A poll waiting for another poll's batch to be confirmed runs
// again when its recheck time comes. As the polling duration ends (or the
// gateway drains), the poll runs once more (Store.PollEnd): a packet a
// delivery took for it in that instant is its answer, and otherwise it is
// no longer parked in Redis.
func (g *Gateway) park(ctx context.Context, waiter *pollWaiter, sid, transport, t string, first session.PollReply) (session.PollReply, error) {
	d := g.cfg.PollingDuration
	if g.draining.Load() && d > time.Second {
		d = time.Second // draining: do not hold requests the shutdown would wait for
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	recheck := newRecheck(first.Recheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return session.PollReply{}, ctx.Err()
		case <-timer.C:
			return g.endPark(ctx, waiter, sid, transport, t)
		case <-g.drainCh:
			return g.endPark(ctx, waiter, sid, transport, t)
		case <-recheck.C:
		case ev := <-waiter.ch:
			if ev.closed && ev.packet != "" {
				return session.PollReply{Result: session.PollAnswer, Packets: []string{ev.packet}}, nil
			}
			if reply, ok := waiter.takeOffer(); ok {
				return reply, nil
			}
			switch {
			case ev.closed, ev.kick:
				return session.PollReply{Result: session.PollSuperseded}, nil
			case ev.gone != "":
				// The script run again says what a poll of a session that
				// is gone gets (pollcheck.go).
				waiter.goneBy = ev.gone
			case first.OnStream:
				continue // a wake is for the stream's packets, not for this poll
			}
		}
		reply, err := g.store.Poll(ctx, sid, transport, waiter.id, t, true)
		if err != nil || reply.Result != session.PollParked {
			return reply, err
		}
		recheck.Stop()
		recheck = newRecheck(reply.Recheck)
	}
}

// endPark ends a parked poll whose polling duration is over: with the
// packet offered to it, if one came, else as Store.PollEnd says.
func (g *Gateway) endPark(ctx context.Context, waiter *pollWaiter, sid, transport, t string) (session.PollReply, error) {
	if reply, ok := waiter.takeOffer(); ok {
		return reply, nil
	}
	return g.store.PollEnd(ctx, sid, transport, waiter.id, t)
}

// releaseOffer gives back a packet offered to a poll that is over or
// gone from this gateway (route O): the session's next poll gets it at
// once (Store.ReleaseOffer; a no-op once a run of the poll took it). It
// never blocks the caller.
func (g *Gateway) releaseOffer(r bus.Route) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.store.ReleaseOffer(ctx, r.SID, r.Arg); err != nil {
			g.metrics.RedisErrors.WithLabelValues("poll").Inc()
			g.log.Warn("packet offered to a poll no longer held here not released; the next poll may take it for received", "sid", session.LogSID(r.SID), "err", err)
		}
	}()
}

// newRecheck returns a timer firing after d, or a stopped one that never
// fires for d = 0.
func newRecheck(d time.Duration) *time.Timer {
	if d > 0 {
		return time.NewTimer(d)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// writePoll writes a poll's answer and reports whether it reached the
// connection whole (written and flushed).
func (g *Gateway) writePoll(w http.ResponseWriter, r *http.Request, transport, index string, packets []string) bool {
	g.repairOut(packets, transport, path.Base(r.URL.Path)) // before the lengths are counted
	bufs := make([][]byte, len(packets))
	for i, p := range packets {
		bufs[i] = []byte(p)
	}
	payload := protocol.AppendPayload(nil, bufs...)
	g.metrics.packetsOut(packets)
	g.cors(w, r)
	h := w.Header()
	var body []byte
	if transport == TransportJSONPPolling {
		body = protocol.AppendJSONP(nil, index, payload)
		h.Set("Content-Type", "text/javascript; charset=UTF-8")
		h.Set("X-XSS-Protection", "0")
	} else {
		body = payload
		h.Set("Content-Type", "text/plain; charset=UTF-8")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "Keep-Alive")
	return g.writeWithin(w, transport, body) == nil
}

// servePost handles a POST of a payload (xhr-polling, jsonp-polling,
// htmlfile): its packets' signals are committed before the answer "1",
// together with a record of the POST, so that a retry of it (a balancer
// retrying a POST whose gateway died before answering) applies nothing
// again (session.TouchPost).
func (g *Gateway) servePost(w http.ResponseWriter, r *http.Request, transport, sid string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.reject(w, r, http.StatusRequestEntityTooLarge, rejectBodyTooLarge, "request body too large")
			return
		}
		g.reject(w, r, http.StatusBadRequest, rejectBodyRead, "cannot read request body")
		return
	}
	// What a retry of this POST reproduces: its cache-buster and its body
	// as received.
	post := session.Post{T: r.URL.Query().Get("t"), Digest: session.PostDigest(body), Transport: transport}
	// Invalid UTF-8 is repaired before anything is decoded, as the
	// reference decodes the body, then the form field (utf8.go).
	body, _ = g.repairIn(body, transport, sid)
	payload := body
	if transport == TransportJSONPPolling {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("d") {
			g.reject(w, r, http.StatusBadRequest, rejectBadJSONPBody, "jsonp POST needs a form field d")
			return
		}
		d, _ := g.repairIn([]byte(form.Get("d")), transport, sid)
		payload, err = protocol.DecodeJSONPBody(d)
		if err != nil {
			g.reject(w, r, http.StatusBadRequest, rejectBadJSONPBody, "jsonp POST field d is not a JSON string")
			return
		}
	}
	// One bound for everything the POST asks Redis (Config.RedisWait).
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RedisWait)
	defer cancel()
	touched, err := g.touchPost(ctx, sid, post)
	if reason, refusal, refused := sessionRefusal(err); refused {
		g.rejected(reason, "transport", transport, "sid", session.LogSID(sid), "method", "POST")
		if errors.Is(err, session.ErrUnknownSession) {
			// The 0.9 client ignores this answer: tell it on the poll it
			// has parked here, if any (pollcheck.go).
			g.sessionGoneForPolls(sid)
		}
		g.writePostAnswer(w, r, refusal)
		return
	}
	if err != nil {
		g.metrics.RedisErrors.WithLabelValues("post").Inc()
		g.log.Warn("POST failed: session store unavailable", "sid", session.LogSID(sid), "err", err)
		g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
		return
	}
	if touched.Verdict == session.PostRetry {
		// Its packets were committed by a gateway that died before
		// answering: answer as it would have, apply nothing.
		g.metrics.PostsRetried.Inc()
		if ok, skipped := g.postRetryLog.Allow(time.Now(), 10*time.Second); ok {
			g.log.Info("a retried POST was committed already: answered, nothing applied again", "sid", session.LogSID(sid), "transport", transport, "more", skipped)
		}
		if err := protocol.DecodePayload(payload, g.cfg.MaxPacketBytes, func([]byte) error { return nil }); err != nil {
			_, answer := payloadRefusal(err)
			g.writePostError(w, r, http.StatusBadRequest, answer)
			return
		}
		g.writePostAnswer(w, r, "1")
		return
	}
	in := &inbound{sid: sid, transport: transport, joined: make(map[string]bool, len(touched.Namespaces))}
	for _, ns := range touched.Namespaces {
		in.joined[ns] = true
	}
	if touched.Class == "" {
		// An htmlfile POST before its GET (a polling one opened the
		// session in TouchPost): processed for the default namespace.
		in.joined[""] = true
	}
	if touched.Class == "stream" {
		// htmlfile: immediate answers go through the stream's gateway.
		in.reply = nil
		if s := g.conn(sid); s != nil && s.transport == TransportHTMLFile {
			s.heard(time.Now()) // a sign of life; Touch recorded it for other gateways
		}
	}
	// Rejected packets are answered as on a websocket (answerRejected),
	// through the session's mailbox (or its htmlfile stream), in order
	// with the rest of the POST: at most Config.MaxBadPackets of them per
	// POST, so that a body of garbage cannot fill the mailbox with answers
	// (the rest are counted and logged only).
	answered := 0
	decodeErr := protocol.DecodePayload(payload, g.cfg.MaxPacketBytes, func(pk []byte) error {
		if reason := g.applyPacket(in, pk); reason != notRejected {
			g.rejected(reason, "sid", session.LogSID(sid), "transport", transport)
			if answered < g.cfg.MaxBadPackets {
				answered++
				for _, p := range answerRejected(reason, pk) {
					in.writes = append(in.writes, g.store.DeliverWrite(sid, p))
				}
			}
		}
		return nil
	})
	if decodeErr != nil {
		reason, _ := payloadRefusal(decodeErr)
		g.rejected(reason, "sid", session.LogSID(sid), "err", decodeErr)
	}
	// A POST that commits anything records itself in the same transaction
	// (not one that ended its session: a retry finds the session gone).
	postID := ""
	if len(in.writes) > 0 {
		writes := in.writes
		if !in.ended {
			postID = strconv.FormatUint(g.postSeq.Add(1), 10)
			writes = append([]bus.Write{g.store.PostWrite(sid, post, postID)}, writes...)
		}
		if err := g.committer.Commit(ctx, sid, writes...); err != nil {
			g.metrics.RedisErrors.WithLabelValues("publish").Inc()
			g.log.Warn("POST signals not committed", "sid", session.LogSID(sid), "err", err)
			g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
			return
		}
	}
	if in.ended {
		g.metrics.disconnected(bus.ReasonClient, 1)
	}
	var written bool
	if decodeErr != nil {
		// Packets before the bad frame were committed; say what went wrong.
		_, answer := payloadRefusal(decodeErr)
		written = g.writePostError(w, r, http.StatusBadRequest, answer)
	} else {
		written = g.writePostAnswer(w, r, "1")
	}
	if postID != "" && written {
		g.confirmPost(sid, postID)
	}
}

// touchPost records a POST's contact and tells whether it is a retry
// (session.TouchPost), waiting while that cannot be told yet: until the
// answer of the POST it matches is confirmed, or the confirm wait ran out.
func (g *Gateway) touchPost(ctx context.Context, sid string, post session.Post) (session.PostReply, error) {
	for {
		var reply session.PostReply
		err := retryRedis(ctx, func() (err error) {
			reply, err = g.store.TouchPost(ctx, sid, post)
			return err
		})
		if err != nil || reply.Verdict != session.PostWait {
			return reply, err
		}
		t := time.NewTimer(reply.Recheck)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return reply, ctx.Err()
		}
	}
}

// confirmPost confirms that the answer of POST postID was written whole,
// so that a POST with the same cache-buster and body after it is taken for
// the client's next one, not a retry (session.ConfirmPostWrite). The
// confirmation (one write) rides the committer's batches, in order with
// the session's other writes; a lost one costs at most a POST taken for a
// retry, only when the next one carries the same t and body.
func (g *Gateway) confirmPost(sid, postID string) {
	ch, err := g.committer.CommitAsync(context.Background(), sid, g.store.ConfirmPostWrite(sid, postID))
	if err != nil {
		return // shutting down: the next POST's new cache-buster makes it new
	}
	go func() {
		if err := <-ch; err != nil {
			g.log.Warn("POST answer not confirmed; a POST with the same cache-buster and body is taken for its retry", "sid", session.LogSID(sid), "err", err)
		}
	}()
}

// retryRedis runs fn until it succeeds, fails in a way that does not
// prove Redis ran none of it (bus.Retryable), or ctx ends: a Redis
// restarting, or a Sentinel failover in progress (connections refused, the
// new primary loading), within the caller's bound is ridden out.
func retryRedis(ctx context.Context, fn func() error) error {
	return retryWhile(ctx, bus.Retryable, fn)
}

// retryWhile runs fn until it succeeds, fails with an error that again does not
// accept, or ctx ends (then it returns fn's last error), waiting
// bus.DefaultCommitRetryMin between tries, doubling up to
// bus.DefaultCommitRetryMax.
func retryWhile(ctx context.Context, again func(error) bool, fn func() error) error {
	wait := bus.DefaultCommitRetryMin
	for {
		err := fn()
		if err == nil || !again(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, bus.DefaultCommitRetryMax)
	}
}

// writePostAnswer writes a POST's answer (status 200) and reports whether
// it reached the connection whole (written and flushed).
func (g *Gateway) writePostAnswer(w http.ResponseWriter, r *http.Request, body string) bool {
	g.cors(w, r)
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if _, err := w.Write([]byte(body)); err != nil {
		return false
	}
	return http.NewResponseController(w).Flush() == nil
}

// payloadRefusal is the rejection reason and the 400 answer's body for a
// POST payload that protocol.DecodePayload refused with err.
func payloadRefusal(err error) (rejectReason, string) {
	if errors.Is(err, protocol.ErrTooLarge) {
		return rejectPacketTooLarge, "packet too large"
	}
	return rejectBadPayload, "malformed payload"
}

// writePostError writes an error answer to a POST, as http.Error does, and
// reports whether it reached the connection whole.
func (g *Gateway) writePostError(w http.ResponseWriter, r *http.Request, status int, msg string) bool {
	g.cors(w, r)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if _, err := io.WriteString(w, msg+"\n"); err != nil {
		return false
	}
	return http.NewResponseController(w).Flush() == nil
}
