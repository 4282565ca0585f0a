package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every path shape reaches its handler or gets its status: the welcome,
// the client script, the handshake, bad protocol versions, unknown
// transports and session ids, methods, preflights, ?disconnect and what
// lies outside /socket.io. Each rejection is counted by its reason.
func TestRouter(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>chat</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "socket.io.js")
	if err := os.WriteFile(script, []byte("var io = {};"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg := newLiveGateway(t, Config{StaticDir: dir, ClientScript: script,
		Transports: []string{TransportXHRPolling, TransportJSONPPolling, TransportHTMLFile}})
	bare := newLiveGateway(t, Config{})
	sid := tg.openPolling()
	for _, tc := range []struct {
		name   string
		gw     *liveGateway // default tg
		method string
		path   string
		status int
		body   string // prefix of the body ("" any)
		reason rejectReason
		header string // a response header that must be set, "Name: value"
	}{
		{name: "welcome", path: "/socket.io", status: 200, body: "Welcome to socket.io."},
		{name: "welcome slash", path: "/socket.io/", status: 200, body: "Welcome to socket.io.", header: "Content-Type: text/plain"},
		{name: "client script", path: "/socket.io/socket.io.js", status: 200, body: "var io = {};", header: "Content-Type: application/javascript"},
		{name: "client script not configured", gw: bare, path: "/socket.io/socket.io.js", status: 404, body: "client script not configured"},
		{name: "static file", path: "/", status: 200, body: "<h1>chat</h1>"},
		{name: "static, not the prefix", path: "/socket.iox", status: 404},
		{name: "static not configured", gw: bare, path: "/index.html", status: 404},
		{name: "protocol 0", path: "/socket.io/0/", status: 500, body: "Protocol version not supported.", reason: rejectBadProtocol},
		{name: "protocol word", path: "/socket.io/x/xhr-polling/" + sid, status: 500, reason: rejectBadProtocol},
		{name: "handshake", path: "/socket.io/1/", status: 200},
		{name: "handshake without slash", path: "/socket.io/1", status: 200},
		{name: "handshake by POST", method: "POST", path: "/socket.io/1/", status: 200},
		{name: "preflight", method: "OPTIONS", path: "/socket.io/1/xhr-polling/" + sid, status: 204,
			header: "Access-Control-Allow-Methods: GET, POST, OPTIONS"},
		{name: "unknown transport", path: "/socket.io/1/carrier-pigeon/" + sid, status: 400, body: "unknown transport", reason: rejectUnknownTransport},
		{name: "disabled transport", path: "/socket.io/1/websocket/" + sid, status: 400, reason: rejectUnknownTransport},
		{name: "transport without sid", path: "/socket.io/1/xhr-polling/", status: 400, body: "bad session id", reason: rejectBadSID},
		{name: "transport, no slash", path: "/socket.io/1/xhr-polling", status: 400, reason: rejectBadSID},
		{name: "sid with a colon", path: "/socket.io/1/xhr-polling/a:b", status: 400, reason: rejectBadSID},
		{name: "sid too long", path: "/socket.io/1/xhr-polling/" + strings.Repeat("a", 65), status: 400, reason: rejectBadSID},
		{name: "unknown sid", path: "/socket.io/1/xhr-polling/nosuchsession", status: 200, body: "7:::1+0", reason: rejectUnknownSID},
		{name: "PUT on polling", method: "PUT", path: "/socket.io/1/xhr-polling/" + sid, status: 405, reason: rejectBadMethod},
		{name: "htmlfile POST of an unknown sid", method: "POST", path: "/socket.io/1/htmlfile/nosuchsession", status: 200, body: "7:::1+0", reason: rejectUnknownSID},
		{name: "disconnect", path: "/socket.io/1/xhr-polling/" + sid + "?disconnect", status: 200},
		{name: "disconnect on any transport name", path: "/socket.io/1/anything/nosuchsession?disconnect=1", status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := tc.gw
			if gw == nil {
				gw = tg
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var before float64
			if tc.reason != notRejected {
				before = gw.rejections(tc.reason)
			}
			code, body, h := gw.do(method, tc.path, "", nil)
			if code != tc.status || !strings.HasPrefix(body, tc.body) {
				t.Errorf("%s %s: %d %q, want %d %q...", method, tc.path, code, body, tc.status, tc.body)
			}
			if tc.header != "" {
				name, value, _ := strings.Cut(tc.header, ": ")
				if got := h.Get(name); got != value {
					t.Errorf("%s: %q, want %q", name, got, value)
				}
			}
			if tc.reason != notRejected {
				if got := gw.rejections(tc.reason); got != before+1 {
					t.Errorf("rejections %q: %v, want %v", tc.reason, got, before+1)
				}
			}
		})
	}
	// ?disconnect ended the session: the next poll gets its 0::, the one
	// after that is told to handshake again.
	for _, want := range []string{"0::", "7:::1+0"} {
		if code, body := tg.get("/socket.io/1/xhr-polling/" + sid); code != 200 || body != want {
			t.Errorf("poll after ?disconnect: %d %q, want %q", code, body, want)
		}
	}
	tg.waitSignals(sid, "disconnect reason=client")
}

// CORS: requests with an Origin get it back with credentials allowed;
// preflights echo the requested headers and are cached a day; requests
// without Origin get no CORS headers.
func TestCORS(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	sid := tg.openPolling()
	origin := http.Header{"Origin": {"http://example.com"}}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		header http.Header
		want   map[string]string
	}{
		{"handshake", "GET", "/socket.io/1/", origin, map[string]string{
			"Access-Control-Allow-Origin": "http://example.com", "Access-Control-Allow-Credentials": "true"}},
		{"no origin", "GET", "/socket.io/1/", nil, map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": ""}},
		{"post", "POST", "/socket.io/1/xhr-polling/" + sid, origin, map[string]string{
			"Access-Control-Allow-Origin": "http://example.com"}},
		{"rejection", "GET", "/socket.io/1/nope/" + sid, origin, map[string]string{
			"Access-Control-Allow-Origin": "http://example.com"}},
		{"preflight", "OPTIONS", "/socket.io/1/xhr-polling/" + sid, http.Header{
			"Origin": {"http://example.com"}, "Access-Control-Request-Headers": {"X-Custom, Content-Type"}},
			map[string]string{
				"Access-Control-Allow-Origin":  "http://example.com",
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
				"Access-Control-Allow-Headers": "X-Custom, Content-Type",
				"Access-Control-Max-Age":       "86400"}},
		{"preflight without requested headers", "OPTIONS", "/socket.io/1/", nil, map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Allow-Headers": "", "Access-Control-Max-Age": "86400"}},
	} {
		_, _, h := tg.do(tc.method, tc.path, "", tc.header)
		for k, v := range tc.want {
			if got := h.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got, v)
			}
		}
	}
}
