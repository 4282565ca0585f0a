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
		{"the Flash bridge", full, "/socket.io/static/flashsocket/WebSocketMain.swf", 404, "no Flash bridge"},
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

// -static serves files and index pages, follows links within the
// directory, and never lists a directory or follows a link out of it
// (404, counted).
func TestStaticConfined(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	files := map[string]string{
		"index.html":           "the page",
		"sub/a.txt":            "a file in a directory without an index",
		"withindex/index.html": "another page",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const secret = "a secret outside the static directory"
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link-in.txt":           "sub/a.txt",
		"link-out.txt":          filepath.Join(outside, "secret.txt"),
		"link-out-relative.txt": filepath.Join("..", filepath.Base(outside), "secret.txt"),
		"dirlink-out":           outside,
		"sub/index.html":        filepath.Join(outside, "secret.txt"), // an index that leads out
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// The relative link only escapes if root and outside are siblings.
	if filepath.Dir(root) != filepath.Dir(outside) {
		t.Fatalf("temp dirs %s and %s are not siblings", root, outside)
	}
	tg := newLiveGateway(t, Config{StaticDir: root})
	for _, tc := range []struct {
		path   string
		status int
		body   string
		reason rejectReason
	}{
		{"/", 200, "the page", notRejected},
		{"/sub/a.txt", 200, files["sub/a.txt"], notRejected},
		{"/withindex/", 200, "another page", notRejected},
		{"/link-in.txt", 200, files["sub/a.txt"], notRejected},
		{"/sub/", 404, "", rejectStaticEscape}, // its index.html is a link out
		{"/link-out.txt", 404, "", rejectStaticEscape},
		{"/link-out-relative.txt", 404, "", rejectStaticEscape},
		{"/dirlink-out/secret.txt", 404, "", rejectStaticEscape},
		{"/dirlink-out/", 404, "", rejectStaticEscape},
		{"/%2e%2e/" + filepath.Base(outside) + "/secret.txt", 404, "", notRejected},
		{"/nothing.txt", 404, "", notRejected},
	} {
		before := tg.rejections(tc.reason)
		code, body, _ := tg.do(http.MethodGet, tc.path, "", nil)
		if code != tc.status || (tc.body != "" && body != tc.body) || strings.Contains(body, "secret") {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, code, body, tc.status, tc.body)
		}
		if tc.reason != notRejected && tg.rejections(tc.reason) != before+1 {
			t.Errorf("GET %s: no %s rejection counted", tc.path, tc.reason)
		}
	}
	// A directory without an index (the link out removed) is not listed.
	if err := os.Remove(filepath.Join(root, "sub/index.html")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/sub/", "/sub"} {
		before := tg.rejections(rejectStaticDirectory)
		code, body, _ := tg.do(http.MethodGet, p, "", nil)
		if code != 404 || strings.Contains(body, "a.txt") || tg.rejections(rejectStaticDirectory) != before+1 {
			t.Errorf("GET %s: %d %q, want 404 without a listing, counted", p, code, body)
		}
	}
	missing := newLiveGateway(t, Config{StaticDir: filepath.Join(root, "missing")})
	if code, _, _ := missing.do(http.MethodGet, "/index.html", "", nil); code != 404 {
		t.Errorf("static directory missing: %d, want 404", code)
	}
}
