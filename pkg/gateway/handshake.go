package gateway

import (
	"context"
	"encoding/json"
	"fmt"
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
// the session is committed to Redis before the answer is written.
func (g *Gateway) serveHandshake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	jsonp, isJSONP := q.Get("jsonp"), q.Has("jsonp")
	if isJSONP && !protocol.ValidJSONPIndex(jsonp) {
		g.metrics.Handshakes.WithLabelValues("bad_request").Inc()
		g.reject(w, r, http.StatusBadRequest, "bad_jsonp_index", "bad jsonp index")
		return
	}
	fail := func(status int, result, msg string) {
		g.metrics.Handshakes.WithLabelValues(result).Inc()
		if isJSONP {
			g.rejected("handshake_"+result, "remote", r.RemoteAddr)
			w.Header().Set("Content-Type", "application/javascript")
			_, _ = w.Write(protocol.AppendJSONPError(nil, jsonp, msg))
			return
		}
		g.reject(w, r, status, "handshake_"+result, msg)
	}
	if reason := g.admit(); reason != "" {
		fail(http.StatusServiceUnavailable, reason, "handshake error: server over capacity, retry")
		return
	}
	if !originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer")) {
		fail(http.StatusForbidden, "bad_origin", "handshake bad origin")
		return
	}
	sid, hs, authData := session.NewSID(), handshakeData(r), ""
	if g.cfg.Authorize {
		verdict, reason, data, err := g.authorize(r.Context(), sid, hs)
		switch {
		case err != nil && !g.cfg.AuthorizeFailOpen:
			g.log.Warn("handshake authorization failed; refusing (fail-closed)", "err", err)
			fail(http.StatusInternalServerError, "auth_error", "handshake error")
			return
		case err != nil:
			g.log.Warn("handshake authorization failed; admitting (fail-open)", "err", err)
		case verdict == "e":
			fail(http.StatusInternalServerError, "auth_error", "handshake error")
			return
		case verdict != "1":
			g.log.Info("handshake unauthorized", "reason", reason, "remote", r.RemoteAddr)
			fail(http.StatusForbidden, "unauthorized", "handshake unauthorized")
			return
		default:
			authData = data
		}
	}
	err := g.store.CreateWithID(r.Context(), sid, hs, authData)
	if err != nil {
		g.metrics.RedisErrors.WithLabelValues("handshake").Inc()
		g.log.Error("handshake failed: session store unavailable", "err", err)
		fail(http.StatusServiceUnavailable, "store_unavailable", "handshake error: session store unavailable")
		return
	}
	g.metrics.Handshakes.WithLabelValues("ok").Inc()
	body := sid + g.handshake
	g.cors(w, r)
	if isJSONP {
		w.Header().Set("Content-Type", "application/javascript")
		_, _ = w.Write(protocol.AppendJSONP(nil, jsonp, []byte(body)))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(body))
}

// authorize asks the workers whether the handshake may proceed: an
// authorize signal on the partition of the session id it will get, answered
// on this gateway's channel. It returns the verdict ("1" allow, "0" deny,
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
	if err := g.pub.Publish(ctx, sid, bus.XAdd(g.cfg.Keys, &sig)); err != nil {
		return "", "", "", fmt.Errorf("gateway: authorize: %w", err)
	}
	select {
	case r := <-ch:
		return r.Arg, r.Room, r.Packet, nil
	case <-ctx.Done():
		return "", "", "", fmt.Errorf("gateway: authorize: no answer within %v: %w", g.cfg.AuthorizeTimeout, ctx.Err())
	}
}

func handshakeData(r *http.Request) session.Handshake {
	h := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return session.Handshake{
		Headers: h,
		Query:   r.URL.RawQuery,
		Address: host,
		Time:    time.Now().UnixMilli(),
		XDomain: r.Header.Get("Origin") != "",
		Secure:  r.TLS != nil,
		URL:     r.URL.RequestURI(),
	}
}
