package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

type pollEvent struct {
	kick   bool   // a newer poll took over
	closed bool   // the session ended
	packet string // with closed: the last packet to write ("" none)
}

// pollWaiter is a poll parked on this gateway.
type pollWaiter struct {
	id string
	ch chan pollEvent // buffered 1; events coalesce
}

func (p *pollWaiter) notify(id string, ev pollEvent) {
	if id != p.id {
		return
	}
	p.notifyAll(ev)
}

func (p *pollWaiter) notifyAll(ev pollEvent) {
	select {
	case p.ch <- ev:
	default: // a wake is already pending; kicks and closes are rare and re-checked by the re-run
		if ev.kick || ev.closed {
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
	waiter := &pollWaiter{id: strconv.FormatUint(g.pollSeq.Add(1), 10), ch: make(chan pollEvent, 1)}
	// Only one poll per session can be parked here at a time: a newer one
	// replaces the older one's registration and answers it 8:: at once
	// (Redis's kick for it, published by the newer poll's script, would
	// find only the newer one here).
	if prev, loaded := g.polls.Swap(sid, waiter); loaded {
		prev.(*pollWaiter).notifyAll(pollEvent{kick: true})
	}
	defer g.polls.CompareAndDelete(sid, waiter)

	ctx := r.Context()
	reply, err := g.store.Poll(ctx, sid, transport, waiter.id, t, false)
	if err == nil && reply.Result == session.PollParked {
		if reply.OnStream {
			// The 0.9 client falls back to polling when its websocket (or
			// htmlfile) did not connect in time, with the same sid; here
			// that stream still looks open. The poll waits (as the
			// reference's does) instead of being answered at once, which
			// the client would repeat in a hot loop.
			g.rejected(rejectPollOnStream, "transport", transport, "sid", sid)
		}
		g.metrics.Connections.WithLabelValues(transport).Inc()
		g.held.Add(1)
		reply, err = g.park(ctx, waiter, sid, transport, t, reply)
		g.held.Add(-1)
		g.metrics.Connections.WithLabelValues(transport).Dec()
	}
	packets := reply.Packets
	reason, refusal, refused := sessionRefusal(err)
	switch {
	case refused:
		g.rejected(reason, "transport", transport, "sid", sid)
		packets = []string{refusal}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away. A poll script whose reply was abandoned may
		// still have taken a batch for this poll: give it back (a no-op
		// unless this poll owns the batch in flight).
		g.settle(sid, waiter.id, false)
		return
	case err != nil:
		// Redis is unreachable: a noop keeps the client polling (a non-200
		// answer would make it drop the session), after a pause.
		g.metrics.RedisErrors.WithLabelValues("poll").Inc()
		g.log.Warn("poll failed", "sid", sid, "err", err)
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
			g.log.Warn("poll batch not released", "sid", sid, "err", err)
		}
		return
	}
	ch, err := g.committer.CommitAsync(context.Background(), sid, g.store.ConfirmWrite(sid, pollID))
	if err != nil {
		return // shutting down: the next poll's new cache-buster trims the batch
	}
	go func() {
		if err := <-ch; err != nil {
			g.log.Warn("poll batch not confirmed; a poll with the same cache-buster gets it again", "sid", sid, "err", err)
		}
	}()
}

// park waits for a wake, a kick, the session's end or the polling duration;
// first is the poll's first reply (parked). A poll waiting for another
// poll's batch to be confirmed runs again when its recheck time comes.
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
			return session.PollReply{Result: session.PollSuperseded}, nil
		case <-g.drainCh:
			return session.PollReply{Result: session.PollSuperseded}, nil
		case <-recheck.C:
		case ev := <-waiter.ch:
			switch {
			case ev.closed && ev.packet != "":
				return session.PollReply{Result: session.PollAnswer, Packets: []string{ev.packet}}, nil
			case ev.closed, ev.kick:
				return session.PollReply{Result: session.PollSuperseded}, nil
			}
			if first.OnStream {
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
	if _, err := w.Write(body); err != nil {
		return false
	}
	return http.NewResponseController(w).Flush() == nil
}

// servePost handles a POST of a payload (xhr-polling, jsonp-polling,
// htmlfile): its packets' signals are committed before the answer "1".
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
	// One bound for everything the POST asks Redis (RedisWait).
	ctx, cancel := context.WithTimeout(r.Context(), RedisWait)
	defer cancel()
	class, namespaces, err := g.store.Touch(ctx, sid)
	if reason, refusal, refused := sessionRefusal(err); refused {
		g.rejected(reason, "transport", transport, "sid", sid, "method", "POST")
		g.writePostAnswer(w, r, refusal)
		return
	}
	if err != nil {
		g.metrics.RedisErrors.WithLabelValues("post").Inc()
		g.log.Warn("POST failed: session store unavailable", "sid", sid, "err", err)
		g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
		return
	}
	in := &inbound{sid: sid, transport: transport, joined: make(map[string]bool, len(namespaces))}
	for _, ns := range namespaces {
		in.joined[ns] = true
	}
	if class == "" {
		// A POST before any GET: the reference loses these packets; we
		// process them for the default namespace like any other.
		in.joined[""] = true
	}
	if class == "stream" {
		// htmlfile: immediate answers go through the stream's gateway.
		in.reply = nil
		if s := g.conn(sid); s != nil && s.transport == TransportHTMLFile {
			s.heard(time.Now()) // a sign of life; Touch recorded it for other gateways
		}
	}
	decodeErr := protocol.DecodePayload(payload, g.cfg.MaxPacketBytes, func(pk []byte) error {
		if reason := g.applyPacket(in, pk); reason != notRejected {
			g.rejected(reason, "sid", sid)
		}
		return nil
	})
	if decodeErr != nil {
		reason := rejectBadPayload
		if errors.Is(decodeErr, protocol.ErrTooLarge) {
			reason = rejectPacketTooLarge
		}
		g.rejected(reason, "sid", sid, "err", decodeErr)
	}
	if len(in.writes) > 0 {
		if err := g.committer.Commit(ctx, sid, in.writes...); err != nil {
			g.metrics.RedisErrors.WithLabelValues("publish").Inc()
			g.log.Warn("POST signals not committed", "sid", sid, "err", err)
			g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
			return
		}
	}
	if in.ended {
		g.metrics.disconnected(bus.ReasonClient, 1)
	}
	if decodeErr != nil {
		// Packets before the bad frame were committed; say what went wrong.
		g.cors(w, r)
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	g.writePostAnswer(w, r, "1")
}

func (g *Gateway) writePostAnswer(w http.ResponseWriter, r *http.Request, body string) {
	g.cors(w, r)
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write([]byte(body))
}
