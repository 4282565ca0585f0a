package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// serveClientScript serves /socket.io/socket.io.js from
// Config.ClientScript and, when minified is set, /socket.io/socket.io.min.js from the
// minified build next to it (MinClientScript), as old pages load it. Either
// gets 404 with a hint when its file is not configured or not there: never
// the 500 of an unknown protocol version.
func (g *Gateway) serveClientScript(w http.ResponseWriter, r *http.Request, minified bool) {
	if g.cfg.ClientScript == "" {
		http.Error(w, "client script not configured: install socket.io-client@0.9.16 and start the gateway with -client-script", http.StatusNotFound)
		return
	}
	path := g.cfg.ClientScript
	if minified {
		path = MinClientScript(path)
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			http.Error(w, "minified client script not found: "+filepath.Base(path)+" is not next to the -client-script file; load /socket.io/socket.io.js", http.StatusNotFound)
			return
		}
	}
	w.Header().Set("Content-Type", "application/javascript")
	http.ServeFile(w, r, path)
}

// MinClientScript is the path of the minified client next to the client
// script at path: socket.io.js gives socket.io.min.js, as in
// socket.io-client 0.9.16's dist directory.
func MinClientScript(path string) string {
	return strings.TrimSuffix(path, ".js") + ".min.js"
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
