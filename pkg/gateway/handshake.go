package gateway

import (
	"net"
	"net/http"
	"strings"
	"time"

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
	if g.draining.Load() {
		fail(http.StatusServiceUnavailable, "draining", "handshake error: server is draining, retry")
		return
	}
	if !originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer")) {
		fail(http.StatusForbidden, "bad_origin", "handshake bad origin")
		return
	}
	sid, err := g.store.Create(r.Context(), handshakeData(r))
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
