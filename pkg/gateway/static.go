package gateway

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
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
// when it is not configured), through an os.Root: no path and no symbolic
// link leads out of the directory (a link within it is followed). A
// directory is served by its index.html and never listed: without one it is
// 404 (rejectStaticDirectory), and so is a path whose link leads out of
// the directory (rejectStaticEscape).
func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request) {
	if g.static == nil {
		http.NotFound(w, r)
		return
	}
	fsys := g.static.FS()
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/") // as http.FileServer cleans it
	if name == "" {
		name = "."
	}
	fi, err := fs.Stat(fsys, name)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		// The root refused the path: a link out of it (or a loop).
		g.staticNotFound(w, r, rejectStaticEscape, err)
		return
	case err == nil && fi.IsDir():
		switch _, err := fs.Stat(fsys, path.Join(name, "index.html")); {
		case errors.Is(err, fs.ErrNotExist):
			g.staticNotFound(w, r, rejectStaticDirectory, err)
			return
		case err != nil:
			g.staticNotFound(w, r, rejectStaticEscape, err)
			return
		}
	}
	http.FileServerFS(fsys).ServeHTTP(w, r)
}

// staticNotFound answers a static path that is not served with 404,
// counted and logged as reason.
func (g *Gateway) staticNotFound(w http.ResponseWriter, r *http.Request, reason rejectReason, err error) {
	g.rejected(reason, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	http.NotFound(w, r)
}
