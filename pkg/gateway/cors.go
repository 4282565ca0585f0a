package gateway

import "net/http"

// cors adds the reference's CORS headers (the Origin echoed, credentials
// allowed) when the request has an Origin the origins allow-list admits. A
// refused origin gets no grant, whatever the answer (403s included): the
// reference echoes any Origin.
func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && originAllowed(g.cfg.Origins, o, "") {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers CORS preflight requests (the reference never does).
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) {
	g.cors(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}
