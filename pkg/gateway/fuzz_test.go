package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/testredis"
)

// fuzzStatuses are the statuses the gateway (and net/http before it)
// answers: README, rejection reasons; handshakes; transports; static files.
var fuzzStatuses = map[int]bool{101: true, 200: true, 204: true, 206: true, 301: true, 304: true, 400: true, 403: true,
	404: true, 405: true, 413: true, 414: true, 416: true, 431: true, 500: true, 501: true, 503: true, 505: true}

// FuzzHTTP sends arbitrary requests (method, path, query, one header line,
// body) as raw bytes to an in-process gateway on a real Redis; "<sid>" in
// the path or query is replaced by a fresh polling session's id, so the
// fuzzer reaches the session paths too. Whatever comes, the gateway never
// panics (net/http recovers a handler's panic and logs it: the test fails
// on that log line), answers or closes the connection within a bound (the
// header and body timeouts; a parked poll is held for the short polling
// duration), answers no status outside fuzzStatuses, and still serves a
// handshake afterwards. Its seeds run with go test; make fuzz fuzzes it.
func FuzzHTTP(f *testing.F) {
	seeds := []struct{ method, path, query, header, body string }{
		{"GET", "/socket.io/1/", "", "", ""},
		{"GET", "/socket.io/1/", "jsonp=0", "Origin: http://example.com", ""},
		{"GET", "/socket.io/1/xhr-polling/<sid>", "t=1", "", ""},
		{"POST", "/socket.io/1/xhr-polling/<sid>", "t=2", "Content-Type: text/plain", "\ufffd5\ufffd1::/a\ufffd7\ufffd3:1+::x"},
		{"POST", "/socket.io/1/xhr-polling/<sid>", "", "", "5:1+::{bad"},
		{"POST", "/socket.io/1/jsonp-polling/<sid>", "i=0", "Content-Type: application/x-www-form-urlencoded", "d=%223%3A%3A%3Ahi%22"},
		{"GET", "/socket.io/1/jsonp-polling/<sid>", "i=x", "", ""},
		{"GET", "/socket.io/1/htmlfile/<sid>", "", "", ""},
		{"GET", "/socket.io/1/websocket/<sid>", "", "Upgrade: websocket", ""},
		{"GET", "/socket.io/1//<sid>/", "disconnect=1", "", ""},
		{"OPTIONS", "/socket.io/1/xhr-polling/<sid>", "", "Origin: null", ""},
		{"PUT", "/socket.io/1/xhr-polling/x:y", "", "", ""},
		{"GET", "/socket.io/2/", "", "", ""},
		{"GET", "/../../etc/passwd", "", "", ""},
		{"GET", "/socket.io/socket.io.js", "", "Range: bytes=0-1", ""},
		{"POST", "/socket.io/1/xhr-polling/<sid>", "", "Transfer-Encoding: chunked", "3\r\n1::\r\n0\r\n\r\n"},
		{"POST", "/socket.io/1/xhr-polling/<sid>", "", "Content-Length: 99", "1::"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.header, s.body)
	}

	red := testredis.Start(f)
	g, err := New(red.Client(f), Config{Node: "gw-fuzz", RouteRefresh: testRouteRefresh, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		PollingDuration: 200 * time.Millisecond, BodyTimeout: time.Second, MaxHandshakeRate: -1}, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	var serverLog logBuffer
	srv := httptest.NewUnstartedServer(g)
	srv.Config = g.HTTPServer()
	srv.Config.ErrorLog = log.New(&serverLog, "", 0)
	srv.Start()
	f.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	addr := srv.Listener.Addr().String()
	client := srv.Client()
	handshake := func(t *testing.T) string {
		resp, err := client.Get(srv.URL + "/socket.io/1/")
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		sid, _, ok := strings.Cut(string(b), ":")
		if resp.StatusCode != 200 || !ok {
			t.Fatalf("handshake: %d %q", resp.StatusCode, b)
		}
		return sid
	}

	f.Fuzz(func(t *testing.T, method, path, query, header, body string) {
		if strings.Contains(path+query, "<sid>") {
			sid := handshake(t)
			path, query = strings.ReplaceAll(path, "<sid>", sid), strings.ReplaceAll(query, "<sid>", sid)
		}
		target := path
		if query != "" {
			target += "?" + query
		}
		var req strings.Builder
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: fuzz\r\n", method, target)
		if header != "" {
			req.WriteString(header + "\r\n")
		}
		if !strings.Contains(strings.ToLower(header), "content-length") && !strings.Contains(strings.ToLower(header), "transfer-encoding") {
			fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
		}
		req.WriteString("Connection: close\r\n\r\n" + body)

		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The bound: the header timeout (10 s) is not reached, a body is
		// cut at the body timeout (1 s), a poll held 200 ms.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, req.String()); err != nil {
			return // the server closed the connection on what it read
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%q: no answer and no close within 5 s", req.String())
		}
		if err == nil {
			resp.Body.Close()
			if !fuzzStatuses[resp.StatusCode] {
				t.Fatalf("%q: status %d", req.String(), resp.StatusCode)
			}
		}
		if lines := serverLog.lines("panic"); len(lines) > 0 {
			t.Fatalf("%q: the gateway panicked:\n%s", req.String(), strings.Join(lines, "\n"))
		}
		handshake(t) // still serving
	})
}
