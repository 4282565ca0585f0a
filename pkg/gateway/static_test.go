package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// /socket.io/socket.io.js and /socket.io/socket.io.min.js serve the client
// script and its minified sibling, or 404 with a hint; never the 500 of an
// unknown protocol version.
func TestClientScripts(t *testing.T) {
	dir := t.TempDir()
	full, min := filepath.Join(dir, "socket.io.js"), filepath.Join(dir, "socket.io.min.js")
	onlyFull := filepath.Join(t.TempDir(), "socket.io.js")
	for path, body := range map[string]string{full: "full client", min: "min client", onlyFull: "full client"} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, script, path string
		status             int
		body               string // the body, or a substring of the 404's hint
	}{
		{"full", full, "/socket.io/socket.io.js", 200, "full client"},
		{"minified", full, "/socket.io/socket.io.min.js", 200, "min client"},
		{"no minified build", onlyFull, "/socket.io/socket.io.min.js", 404, "socket.io.min.js is not next to the -client-script"},
		{"not configured", "", "/socket.io/socket.io.js", 404, "-client-script"},
		{"not configured, minified", "", "/socket.io/socket.io.min.js", 404, "-client-script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testGateway(0)
			g.cfg.ClientScript = tc.script
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			body := rec.Body.String()
			if rec.Code != tc.status || !strings.Contains(body, tc.body) || (tc.status == 200 && body != tc.body) {
				t.Fatalf("GET %s: %d %q, want %d %q", tc.path, rec.Code, body, tc.status, tc.body)
			}
			if ct := rec.Header().Get("Content-Type"); tc.status == 200 && !strings.Contains(ct, "javascript") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestMinClientScript(t *testing.T) {
	for in, want := range map[string]string{
		"dist/socket.io.js": "dist/socket.io.min.js",
		"/x/client":         "/x/client.min.js",
	} {
		if got := MinClientScript(in); got != want {
			t.Errorf("MinClientScript(%q) = %q, want %q", in, got, want)
		}
	}
}
