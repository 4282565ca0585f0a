package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// closedBy reads c until the server closes it or the deadline passes, and
// reports how long that took and whether it was closed.
func closedBy(c net.Conn, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
		return time.Since(start), false
	}
	return time.Since(start), true
}

// The gateway process honours -body-timeout and -idle-timeout (issue 16
// item 4): 50 POSTs trickling a byte every 300 ms and a keep-alive
// connection that says nothing after its first request are all closed
// within their bounds, while a polling client is served.
func TestGatewayClosesSlowAndIdleConnections(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a", "-body-timeout", "1s", "-idle-timeout", "2s")
	c.worker("w1", "echo")
	get := func(path string) string {
		resp, err := http.Get(gw.url(path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	sid, _, _ := strings.Cut(get("/socket.io/1/"), ":")
	if got := get("/socket.io/1/xhr-polling/" + sid); got != "1::" {
		t.Fatalf("first poll %q", got)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 51)
	for i := range 50 {
		conn, err := net.Dial("tcp", gw.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /socket.io/1/xhr-polling/%s?t=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", sid, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() {
				for {
					select {
					case <-done:
						return
					case <-time.After(300 * time.Millisecond):
					}
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
			took, closed := closedBy(conn, 6*time.Second)
			close(done)
			if !closed {
				errs <- fmt.Errorf("slow POST %d open after %v", i, took)
			}
		}()
	}
	idle, err := net.Dial("tcp", gw.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprint(idle, "GET /socket.io/1/ HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("handshake on the idle connection: %v %v", resp, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if took, closed := closedBy(idle, 7*time.Second); !closed {
			errs <- fmt.Errorf("idle connection open after %v", took)
		}
	}()

	// Meanwhile the polling client sends and gets its echo.
	resp, err := http.Post(gw.url("/socket.io/1/xhr-polling/"+sid), "text/plain", strings.NewReader("3:::hello"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST beside the slow ones: %v %v", resp, err)
	}
	resp.Body.Close()
	// Polls until the echo comes (the welcome event may come first).
	for polls, got := 0, ""; !strings.Contains(got, "3:::hello"); polls++ {
		if polls == 5 {
			t.Fatalf("no echo in %d polls; the last: %q", polls, got)
		}
		got = get("/socket.io/1/xhr-polling/" + sid)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
