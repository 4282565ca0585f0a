package gateway

import "net/http"

// rejected counts bad input by reason and logs it: every rejection goes
// through here, so each has a metric and a log line.
func (g *Gateway) rejected(reason string, attrs ...any) {
	g.metrics.Rejected.WithLabelValues(reason).Inc()
	g.log.Info("rejected", append([]any{"reason", reason}, attrs...)...)
}

// reject answers a bad request with status and body, counts it and logs it.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, status int, reason, body string) {
	g.rejected(reason, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	g.cors(w, r)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
