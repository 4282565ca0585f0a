package gateway

import (
	"context"
	"io"
	"net"
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
		// Current behaviour (issue 16): the port defaults to 80 whatever the
		// scheme, so "host:443" does not admit a page served over https on
		// the default port; only "host:80" or "host:*" do.
		{"https default port is taken as 80 (issue 16)", []string{"example.com:443"}, "https://example.com", "", false},
		{"https default port matches host:80 (issue 16)", []string{"example.com:80"}, "https://example.com", "", true},
		{"https explicit 443", []string{"example.com:443"}, "https://example.com:443", "", true},
	} {
		if got := originAllowed(tc.origins, tc.origin, tc.referer); got != tc.want {
			t.Errorf("%s: originAllowed(%q, %q, %q) = %v, want %v", tc.name, tc.origins, tc.origin, tc.referer, got, tc.want)
		}
	}
}

// The Flash policy file lists each pattern as a domain and port, with
// non-numeric ports as "*" and XML special characters escaped.
func TestFlashPolicy(t *testing.T) {
	got := string(flashPolicy([]string{"*:*", "example.com:843", "a&b<\">:x", "bare"}))
	for _, want := range []string{
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
