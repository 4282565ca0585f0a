package gateway

import "net/http"

// serveClientScript serves /socket.io/socket.io.js from
// Config.ClientScript (404 with a hint when it is not configured).
func (g *Gateway) serveClientScript(w http.ResponseWriter, r *http.Request) {
	if g.cfg.ClientScript == "" {
		http.Error(w, "client script not configured: install socket.io-client@0.9.16 and start the gateway with -client-script", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/javascript")
	http.ServeFile(w, r, g.cfg.ClientScript)
}

// serveStatic serves what is outside /socket.io from Config.StaticDir (404
// when it is not configured).
func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request) {
	if g.cfg.StaticDir == "" {
		http.NotFound(w, r)
		return
	}
	http.FileServer(http.Dir(g.cfg.StaticDir)).ServeHTTP(w, r)
}
