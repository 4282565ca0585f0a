package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// originAllowed against the reference's allow-list rules (socket.io 0.9
// lib/manager.js verifyOrigin).
func TestOriginAllowed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		origins []string
		origin  string
		referer string
		want    bool
	}{
		{"all allows no origin", []string{"*:*"}, "", "", true},
		{"all allows any", []string{"*:*"}, "http://evil.example:1234", "", true},
		{"no origin, list", []string{"example.com:80"}, "", "", false},
		{"host and default port", []string{"example.com:80"}, "http://example.com", "", true},
		{"host and explicit port", []string{"example.com:8080"}, "http://example.com:8080", "", true},
		{"host, other port", []string{"example.com:8080"}, "http://example.com:9090", "", false},
		{"other host", []string{"example.com:80"}, "http://other.example", "", false},
		{"host any port", []string{"example.com:*"}, "http://example.com:1234", "", true},
		{"any host on a port", []string{"*:8080"}, "http://anything.example:8080", "", true},
		{"any host, other port", []string{"*:8080"}, "http://anything.example", "", false},
		{"referer when no Origin", []string{"example.com:80"}, "", "http://example.com/page.html", true},
		{"Origin wins over Referer", []string{"example.com:80"}, "http://other.example", "http://example.com/", false},
		{"null is any host on port 80", []string{"*:80"}, "null", "", true},
		{"null against a host", []string{"example.com:80"}, "null", "", false},
		{"unparsable", []string{"example.com:*"}, "http://[::1", "", false},
		{"no host", []string{"*:80"}, "file:///etc/passwd", "", false},
		{"second pattern", []string{"a.example:80", "b.example:*"}, "http://b.example:81", "", true},
		// The port defaults by scheme (issue 16): 443 for https and wss,
		// 80 for http and ws; an explicit port must match.
		{"https default port is 443", []string{"example.com:443"}, "https://example.com", "", true},
		{"https default port is not 80", []string{"example.com:80"}, "https://example.com", "", false},
		{"https explicit 443", []string{"example.com:443"}, "https://example.com:443", "", true},
		{"https explicit other port", []string{"example.com:443"}, "https://example.com:8443", "", false},
		{"HTTPS scheme case", []string{"example.com:443"}, "HTTPS://example.com", "", true},
		{"wss default port is 443", []string{"*:443"}, "wss://example.com", "", true},
		{"http default port is not 443", []string{"example.com:443"}, "http://example.com", "", false},
		{"http explicit 443", []string{"example.com:443"}, "http://example.com:443", "", true},
		{"https referer default port", []string{"example.com:443"}, "", "https://example.com/page.html", true},
	} {
		if got := originAllowed(tc.origins, tc.origin, tc.referer); got != tc.want {
			t.Errorf("%s: originAllowed(%q, %q, %q) = %v, want %v", tc.name, tc.origins, tc.origin, tc.referer, got, tc.want)
		}
	}
}

// The Flash policy file lists each pattern as a domain and port, with
// non-numeric ports as "*" and XML special characters escaped.
func TestFlashPolicy(t *testing.T) {
	got := string(flashPolicy([]string{"*:*", "example.com:843", "a&b<\">:x", "bare", "::1:8080"}))
	for _, want := range []string{
		`<allow-access-from domain="::1" to-ports="8080"/>`,
		`<allow-access-from domain="*" to-ports="*"/>`,
		`<allow-access-from domain="example.com" to-ports="843"/>`,
		`<allow-access-from domain="a&amp;b&lt;&quot;&gt;" to-ports="*"/>`,
		`<allow-access-from domain="bare" to-ports="*"/>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("policy lacks %s:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, `<?xml version="1.0"?>`) || !strings.HasSuffix(got, "</cross-domain-policy>\n") {
		t.Errorf("policy not a whole document:\n%s", got)
	}
}

// ServeFlashPolicy writes the policy and a NUL to each client, and returns
// nil once its context ends.
func TestServeFlashPolicy(t *testing.T) {
	tg := newLiveGateway(t, Config{Origins: []string{"example.com:80"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.g.ServeFlashPolicy(ctx, l) }()
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := string(flashPolicy([]string{"example.com:80"})) + "\x00"; string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeFlashPolicy did not return")
	}
}

// With an allow-list, every transport request and preflight is held to it,
// as the handshake is: a refused origin (or none) gets 403 "bad origin",
// counted, with no CORS grant, whatever the transport; an allowed one is
// served with its Origin echoed. A refused ?disconnect leaves the session
// alone. An https page is admitted by "host:443".
func TestOriginsEveryRequest(t *testing.T) {
	tg := newLiveGateway(t, Config{Origins: []string{"example.com:443"},
		Transports: []string{TransportWebSocket, TransportHTMLFile, TransportXHRPolling, TransportJSONPPolling}})
	page := "https://example.com"
	allowed := http.Header{"Origin": {page}}
	sid := tg.handshakeFrom(allowed)
	if code, body, h := tg.do(http.MethodGet, "/socket.io/1/xhr-polling/"+sid, "", allowed); code != 200 || body != "1::" ||
		h.Get("Access-Control-Allow-Origin") != page || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed poll: %d %q %v", code, body, h)
	}
	jsid := tg.handshakeFrom(http.Header{"Referer": {page + "/chat.html"}})

	refused := map[string]http.Header{
		"other host":         {"Origin": {"https://evil.example"}},
		"http page":          {"Origin": {"http://example.com"}},
		"other port":         {"Origin": {"https://example.com:8443"}},
		"referer other host": {"Referer": {"https://evil.example/x.html"}},
		"none":               nil,
	}
	requests := []struct {
		name, method, path, body string
	}{
		{"handshake", http.MethodGet, "/socket.io/1/", ""},
		{"preflight", http.MethodOptions, "/socket.io/1/xhr-polling/" + sid, ""},
		{"preflight, handshake", http.MethodOptions, "/socket.io/1/", ""},
		{"xhr poll", http.MethodGet, "/socket.io/1/xhr-polling/" + sid, ""},
		{"xhr post", http.MethodPost, "/socket.io/1/xhr-polling/" + sid, "3:::hi"},
		{"jsonp poll", http.MethodGet, "/socket.io/1/jsonp-polling/" + jsid + "?i=0", ""},
		{"jsonp post", http.MethodPost, "/socket.io/1/jsonp-polling/" + jsid + "?i=0", `d="3:::hi"`},
		{"htmlfile", http.MethodGet, "/socket.io/1/htmlfile/" + sid, ""},
		{"websocket without upgrade", http.MethodGet, "/socket.io/1/websocket/" + sid, ""},
		{"disconnect", http.MethodGet, "/socket.io/1/xhr-polling/" + sid + "?disconnect", ""},
		{"bad sid", http.MethodGet, "/socket.io/1/xhr-polling/a:b", ""},
		{"unknown transport", http.MethodGet, "/socket.io/1/nope/" + sid, ""},
		{"bad protocol", http.MethodGet, "/socket.io/2/", ""},
	}
	for _, rq := range requests {
		for name, h := range refused {
			hs := rq.name == "handshake"
			reason := rejectBadOrigin
			if hs {
				reason = rejectHandshakeBadOrigin
			}
			before := tg.rejections(reason)
			code, body, got := tg.do(rq.method, rq.path, rq.body, h)
			if got.Get("Access-Control-Allow-Origin") != "" || got.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s, %s: CORS granted: %v", rq.name, name, got)
			}
			if rq.name == "bad protocol" {
				continue // refused before any origin is looked at; no grant still
			}
			want := "bad origin"
			if hs {
				want = "handshake bad origin"
			}
			if code != http.StatusForbidden || body != want {
				t.Errorf("%s, %s: %d %q, want 403 %q", rq.name, name, code, body, want)
			}
			if tg.rejections(reason) != before+1 {
				t.Errorf("%s, %s: no %s rejection counted", rq.name, name, reason)
			}
		}
	}
	for name, h := range refused {
		if _, resp, err := tg.dialWS(TransportWebSocket, sid, h); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden ||
			resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("websocket, %s: %v %v", name, err, resp)
		}
	}

	// The refused requests changed nothing: the session is alive, and an
	// allowed preflight and POST are granted.
	code, _, h := tg.do(http.MethodOptions, "/socket.io/1/xhr-polling/"+sid, "", allowed)
	if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != page || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed preflight: %d %v", code, h)
	}
	code, body, h := tg.do(http.MethodPost, "/socket.io/1/xhr-polling/"+sid, "3:::ok", allowed)
	if code != 200 || body != "1" || h.Get("Access-Control-Allow-Origin") != page {
		t.Errorf("allowed post: %d %q %v", code, body, h)
	}
	tg.waitSignals(sid, "connect", "message ok")
}
