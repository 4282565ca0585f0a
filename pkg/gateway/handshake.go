package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// serveHandshake answers GET /socket.io/1/ (any method, as the reference):
// the session is committed to Redis before the answer is written. Excess
// handshakes are held, within bounds, rather than refused (see
// admission.go).
func (g *Gateway) serveHandshake(w http.ResponseWriter, r *http.Request) {
	arrival := time.Now()
	q := r.URL.Query()
	jsonp, isJSONP := q.Get("jsonp"), q.Has("jsonp")
	if isJSONP && !protocol.ValidJSONPIndex(jsonp) {
		g.metrics.Handshakes.WithLabelValues("bad_request").Inc()
		g.reject(w, r, http.StatusBadRequest, rejectBadJSONPIndex, "bad jsonp index")
		return
	}
	// fail refuses the handshake for reason (a rejectHandshake* reason:
	// its result label follows from it).
	fail := func(status int, reason rejectReason, msg string) {
		g.metrics.Handshakes.WithLabelValues(reason.handshakeResult()).Inc()
		if isJSONP {
			g.rejected(reason, "remote", r.RemoteAddr)
			w.Header().Set("Content-Type", "application/javascript")
			_, _ = w.Write(protocol.AppendJSONPError(nil, jsonp, msg))
			return
		}
		g.reject(w, r, status, reason, msg)
	}
	// shed refuses for lack of capacity: 503 with Retry-After, counted, and
	// logged once per kind and interval rather than once per request.
	shed := func(reason rejectReason, msg string, after time.Duration, attrs ...any) {
		result := reason.handshakeResult()
		g.metrics.Handshakes.WithLabelValues(result).Inc()
		g.metrics.rejected(reason)
		g.logRefusal(result, append([]any{"remote", r.RemoteAddr, "held", time.Since(arrival)}, attrs...)...)
		w.Header().Set("Retry-After", retryAfter(after))
		if isJSONP {
			w.Header().Set("Content-Type", "application/javascript")
			_, _ = w.Write(protocol.AppendJSONPError(nil, jsonp, msg))
			return
		}
		g.cors(w, r)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(msg))
	}
	if !originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer")) {
		fail(http.StatusForbidden, rejectHandshakeBadOrigin, "handshake bad origin")
		return
	}
	hs, ok := g.handshakeData(r)
	if !ok {
		fail(http.StatusRequestURITooLong, rejectHandshakeTooLarge, "handshake too large")
		return
	}
	if g.overConnections() {
		shed(rejectHandshakeOverConnections, bodyOverConnections, 0)
		return
	}
	draining := g.draining.Load()
	bound := g.cfg.HandshakeHold
	if draining {
		bound = min(bound, drainHold)
	}
	h := g.admission.newHold(arrival, bound)
	defer h.release()
	defer func() {
		if h.waited > 0 {
			g.metrics.HandshakeWait.Observe(h.waited.Seconds())
		}
	}()
	switch result, after := h.admitRate(r.Context(), !draining); result {
	case "":
	case resultCanceled:
		g.canceled(r, arrival)
		return
	case resultOverRate:
		shed(rejectHandshakeOverRate, bodyOverRate, after)
		return
	case resultQueueFull:
		shed(rejectHandshakeQueueFull, bodyQueueFull, after)
		return
	default:
		shed(rejectHandshakeDraining, bodyDraining, after)
		return
	}
	sid, authData := session.NewSID(), ""
	if g.cfg.Authorize {
		verdict, reason, data, err := g.authorize(r.Context(), sid, hs)
		switch {
		case err != nil && !g.cfg.AuthorizeFailOpen:
			g.log.Warn("handshake authorization failed; refusing (fail-closed)", "err", err)
			fail(http.StatusInternalServerError, rejectHandshakeAuthError, "handshake error")
			return
		case err != nil:
			g.log.Warn("handshake authorization failed; admitting (fail-open)", "err", err)
		case verdict == "e":
			fail(http.StatusInternalServerError, rejectHandshakeAuthError, "handshake error")
			return
		case verdict != "1":
			g.log.Info("handshake unauthorized", "reason", reason, "remote", r.RemoteAddr)
			fail(http.StatusForbidden, rejectHandshakeUnauthorized, "handshake unauthorized")
			return
		default:
			authData = data
		}
	}
	// The commit is idempotent (same sid, same fields), so an attempt that
	// timed out here but reached Redis later does no harm to a retry.
	err := h.retry(r.Context(), g.cfg.HandshakeAttemptTimeout, func(ctx context.Context) error {
		return g.store.CreateWithID(ctx, sid, hs, authData)
	}, func(n int, err error) {
		g.metrics.RedisErrors.WithLabelValues("handshake").Inc()
		g.log.Debug("handshake: session commit failed; retrying within the hold", "attempt", n, "err", err)
	})
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		g.canceled(r, arrival)
		return
	default:
		shed(rejectHandshakeStoreUnavailable, bodyStoreUnavailable, 0, "err", err)
		return
	}
	g.metrics.Handshakes.WithLabelValues("ok").Inc()
	body := sid + g.handshake
	g.cors(w, r)
	g.setBinding(w, r, sid)
	if isJSONP {
		w.Header().Set("Content-Type", "application/javascript")
		_, _ = w.Write(protocol.AppendJSONP(nil, jsonp, []byte(body)))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(body))
}

// canceled counts a handshake whose client went away while it was held
// (nobody is left to answer).
func (g *Gateway) canceled(r *http.Request, arrival time.Time) {
	g.metrics.Handshakes.WithLabelValues(resultCanceled).Inc()
	g.log.Debug("handshake abandoned by the client while held", "remote", r.RemoteAddr, "held", time.Since(arrival))
}

// authorize asks the workers whether the handshake may proceed: an
// authorize signal on the partition of the session id it will get, answered
// on this gateway's route stream. It returns the verdict ("1" allow, "0" deny,
// "e" the hook failed), the reason and the data to keep with the session.
func (g *Gateway) authorize(ctx context.Context, sid string, hs session.Handshake) (verdict, reason, data string, err error) {
	hsJSON, err := json.Marshal(hs)
	if err != nil {
		return "", "", "", err
	}
	id := "a" + strconv.FormatUint(g.pollSeq.Add(1), 10)
	ch := make(chan bus.Route, 1)
	g.auths.Store(id, ch)
	defer g.auths.Delete(id)
	ctx, cancel := context.WithTimeout(ctx, g.cfg.AuthorizeTimeout)
	defer cancel()
	sig := bus.Signal{Kind: bus.KindAuthorize, SID: sid, Gateway: g.cfg.Node, Time: time.Now(),
		Data: string(hsJSON), Reply: g.cfg.Node + " " + id}
	if err := g.committer.Commit(ctx, sid, bus.XAdd(g.cfg.Keys, &sig)); err != nil {
		return "", "", "", fmt.Errorf("gateway: authorize: %w", err)
	}
	select {
	case r := <-ch:
		return r.Arg, r.Room, r.Packet, nil
	case <-ctx.Done():
		return "", "", "", fmt.Errorf("gateway: authorize: no answer within %v: %w", g.cfg.AuthorizeTimeout, ctx.Err())
	}
}

// handshakeData is what the session keeps of handshake request r: the
// headers Config.HandshakeHeaders names, the query, the client's address,
// the time, xdomain, secure and the URL, in at most Config.MaxHandshakeBytes
// bytes of JSON. Over that, the kept headers are dropped, largest first,
// until it fits (each counted, and logged at debug level); ok is false when
// it does not fit even without headers (the query and URL are too long).
func (g *Gateway) handshakeData(r *http.Request) (hs session.Handshake, ok bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	hs = session.Handshake{
		Headers: make(map[string]string, len(g.cfg.HandshakeHeaders)),
		Query:   r.URL.RawQuery,
		Address: host,
		Time:    time.Now().UnixMilli(),
		XDomain: r.Header.Get("Origin") != "",
		Secure:  r.TLS != nil,
		URL:     r.URL.RequestURI(),
	}
	for _, name := range g.cfg.HandshakeHeaders {
		if name == "host" {
			if r.Host != "" {
				hs.Headers[name] = r.Host
			}
		} else if v := r.Header.Values(name); len(v) > 0 {
			hs.Headers[name] = strings.Join(v, ", ")
		}
	}
	var dropped []string
	defer func() {
		if len(dropped) > 0 {
			g.metrics.HandshakeHeadersDropped.Add(float64(len(dropped)))
			g.log.Debug("handshake headers not kept: over -max-handshake-bytes", "headers", dropped, "remote", r.RemoteAddr)
		}
	}()
	for handshakeSize(hs) > g.cfg.MaxHandshakeBytes {
		largest := ""
		for k, v := range hs.Headers {
			if l := hs.Headers[largest]; largest == "" || len(v) > len(l) || len(v) == len(l) && k < largest {
				largest = k
			}
		}
		if largest == "" {
			return hs, false
		}
		delete(hs.Headers, largest)
		dropped = append(dropped, largest)
	}
	return hs, true
}

// handshakeSize is the length of hs's JSON, as the session stores it.
func handshakeSize(hs session.Handshake) int {
	b, err := json.Marshal(hs)
	if err != nil { // strings, bools and numbers only: never
		return math.MaxInt
	}
	return len(b)
}
