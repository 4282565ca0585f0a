package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// ServeHTTP routes /socket.io/... requests; anything else goes to the static
// directory, if configured.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.boundBody(w, r)
	rest, ok := strings.CutPrefix(r.URL.Path, "/socket.io")
	if !ok || (rest != "" && rest[0] != '/') {
		g.serveStatic(w, r)
		return
	}
	rest = strings.TrimPrefix(rest, "/")
	if rest == "" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("Welcome to socket.io."))
		return
	}
	if rest == "socket.io.js" || rest == "socket.io.min.js" {
		g.serveClientScript(w, r, rest == "socket.io.min.js")
		return
	}
	if strings.HasPrefix(rest, "static/") {
		// The reference serves the Flash bridge here
		// (static/flashsocket/WebSocketMain.swf); Flash clients speak
		// hixie-76, which is not implemented, so there is no file to serve.
		http.Error(w, "not found: the gateway serves no Flash bridge (flashsocket here is RFC 6455 only)", http.StatusNotFound)
		return
	}
	parts := strings.SplitN(rest, "/", 4)
	if parts[0] != "1" {
		g.reject(w, r, http.StatusInternalServerError, rejectBadProtocol, "Protocol version not supported.")
		return
	}
	transport, sid := "", ""
	if len(parts) > 1 {
		transport = parts[1]
	}
	if len(parts) > 2 {
		sid = parts[2]
	}
	// The origins allow-list applies to every request, as to the
	// handshake (which answers a refusal in its own way, jsonp included).
	if (r.Method == http.MethodOptions || transport != "" || sid != "") &&
		!originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer")) {
		g.reject(w, r, http.StatusForbidden, rejectBadOrigin, "bad origin")
		return
	}
	if r.Method == http.MethodOptions {
		g.preflight(w, r)
		return
	}
	if transport == "" && sid == "" {
		g.serveHandshake(w, r)
		return
	}
	if sid != "" && !g.bound(r, sid) {
		g.reject(w, r, http.StatusForbidden, rejectSessionBinding, "session binding cookie missing or wrong")
		return
	}
	if _, disc := r.URL.Query()["disconnect"]; disc && sid != "" {
		g.serveDisconnect(w, r, transport, sid)
		return
	}
	if !g.transports[transport] {
		g.reject(w, r, http.StatusBadRequest, rejectUnknownTransport, "unknown transport")
		return
	}
	if sid == "" || strings.ContainsAny(sid, ":\n") || len(sid) > 64 {
		g.reject(w, r, http.StatusBadRequest, rejectBadSID, "bad session id")
		return
	}
	switch transport {
	case TransportWebSocket, TransportFlashSocket:
		g.serveWebSocket(w, r, transport, sid)
	case TransportHTMLFile:
		if r.Method == http.MethodPost {
			g.servePost(w, r, transport, sid)
		} else {
			g.serveHTMLFile(w, r, sid)
		}
	default:
		switch r.Method {
		case http.MethodGet:
			g.servePoll(w, r, transport, sid)
		case http.MethodPost:
			g.servePost(w, r, transport, sid)
		default:
			g.reject(w, r, http.StatusMethodNotAllowed, rejectBadMethod, "method not allowed")
		}
	}
}

// serveDisconnect handles the synchronous ?disconnect request sent on page
// unload: the session ends whether or not a poll is pending. It is
// honoured only from the session's own transport context: for a polling
// session, on its transport's path or on the path without a transport that
// the 0.9 client's disconnectSync uses (/socket.io/1//<sid>/?disconnect=1;
// anyone with the sid may POST 0:: to a polling session anyway); never for
// a session a streaming transport holds (websocket, flashsocket, htmlfile:
// its client sends 0:: on its own connection, and a websocket's closing
// ends the session), so a leaked sid cannot push 0:: to a websocket
// client, after which a 0.9 client never reconnects. A refusal is 403
// (disconnect_refused); an unknown session is answered 200, as before.
func (g *Gateway) serveDisconnect(w http.ResponseWriter, r *http.Request, transport, sid string) {
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RedisWait)
	defer cancel()
	class, current, err := g.store.Transport(ctx, sid)
	switch {
	case errors.Is(err, session.ErrUnknownSession):
		g.cors(w, r)
		w.WriteHeader(http.StatusOK)
		return
	case err != nil:
		g.metrics.RedisErrors.WithLabelValues("disconnect").Inc()
		g.reject(w, r, http.StatusServiceUnavailable, rejectStoreUnavailable, "session store unavailable")
		return
	case class == "stream" || (transport != "" && class == "poll" && transport != current):
		g.rejected(rejectDisconnectRefused, "sid", session.LogSID(sid), "transport", transport, "held_by", current)
		g.cors(w, r)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("disconnect refused"))
		return
	}
	g.cors(w, r)
	if err := g.committer.Commit(r.Context(), sid, g.store.EndWrite(sid, bus.ReasonClient, "0::")); err != nil {
		g.metrics.RedisErrors.WithLabelValues("disconnect").Inc()
		g.log.Warn("disconnect request failed", "sid", session.LogSID(sid), "err", err)
	} else {
		g.metrics.disconnected(bus.ReasonClient, 1)
	}
	w.WriteHeader(http.StatusOK)
}
