package gateway

import (
	"net/http"
	"strings"

	"github.com/realtime/realtime/pkg/bus"
)

// ServeHTTP routes /socket.io/... requests; anything else goes to the static
// directory, if configured.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	parts := strings.SplitN(rest, "/", 4)
	if parts[0] != "1" {
		g.reject(w, r, http.StatusInternalServerError, rejectBadProtocol, "Protocol version not supported.")
		return
	}
	if r.Method == http.MethodOptions {
		g.preflight(w, r)
		return
	}
	transport, sid := "", ""
	if len(parts) > 1 {
		transport = parts[1]
	}
	if len(parts) > 2 {
		sid = parts[2]
	}
	if transport == "" && sid == "" {
		g.serveHandshake(w, r)
		return
	}
	if _, disc := r.URL.Query()["disconnect"]; disc && sid != "" {
		g.serveDisconnect(w, r, sid)
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
// unload: the session ends whether or not a poll is pending.
func (g *Gateway) serveDisconnect(w http.ResponseWriter, r *http.Request, sid string) {
	g.cors(w, r)
	if err := g.committer.Commit(r.Context(), sid, g.store.EndWrite(sid, bus.ReasonClient, "0::")); err != nil {
		g.metrics.RedisErrors.WithLabelValues("disconnect").Inc()
		g.log.Warn("disconnect request failed", "sid", sid, "err", err)
	} else {
		g.metrics.disconnected(bus.ReasonClient, 1)
	}
	w.WriteHeader(http.StatusOK)
}
