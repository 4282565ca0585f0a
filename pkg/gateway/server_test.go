package gateway

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

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
)

// rawConn dials the live gateway over TCP.
func (tg *liveGateway) rawConn() net.Conn {
	tg.t.Helper()
	c, err := net.Dial("tcp", tg.srv.Listener.Addr().String())
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads c until the gateway closes it, for at most limit,
// and returns how long that took and whether it happened.
func closedWithin(c net.Conn, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
		return time.Since(start), false
	}
	return time.Since(start), true // EOF, or a reset (the client was still writing)
}

// 50 POSTs whose bodies trickle in, a byte every 200 ms, are all cut off
// within the body timeout (plus slack for a loaded machine) and counted,
// while a well-behaved polling client in the same run is served.
func TestSlowBodiesCutOff(t *testing.T) {
	const bodyTimeout = time.Second
	tg := newLiveGateway(t, Config{BodyTimeout: bodyTimeout})
	victim := tg.openPolling()

	const n = 50
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := range n {
		c := tg.rawConn()
		fmt.Fprintf(c, "POST /socket.io/1/xhr-polling/%s?t=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", victim, i)
		stop := make(chan struct{})
		go func() { // the trickle: one byte every 200 ms until the write fails
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(stop)
			took, closed := closedWithin(c, bodyTimeout+4*time.Second)
			if !closed {
				results <- fmt.Errorf("slow POST %d still open after %v", i, took)
				return
			}
			if took < bodyTimeout-100*time.Millisecond {
				results <- fmt.Errorf("slow POST %d closed after %v, before the body timeout", i, took)
				return
			}
			results <- nil
		}()
	}

	// The well-behaved client meanwhile: its POST and poll work.
	if code, body := tg.post("/socket.io/1/xhr-polling/"+victim+"?t=x", "3:::hi"); code != http.StatusOK || body != "1" {
		t.Fatalf("POST beside the slow ones: %d %q", code, body)
	}
	tg.waitSignals(victim, "connect", "message hi")

	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Error(err)
		}
	}
	if got := counterValue(t, tg.g.metrics.BodyTimeouts); got != n {
		t.Errorf("body timeouts counted: %v, want %d", got, n)
	}
	// A body that comes in two parts inside the bound is read.
	c := tg.rawConn()
	fmt.Fprintf(c, "POST /socket.io/1/xhr-polling/%s?t=y HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n3::", victim)
	time.Sleep(bodyTimeout / 2)
	fmt.Fprint(c, ":yo")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST in two parts within the bound: %v %v", resp, err)
	}
	tg.waitSignals(victim, "connect", "message hi", "message yo")
}

func gaugeValue(t *testing.T, g interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// A keep-alive connection without a request is closed after the idle
// timeout; a parked poll and a websocket held longer than it are not idle.
func TestIdleConnectionsClosed(t *testing.T) {
	const idle = time.Second
	tg := newLiveGateway(t, Config{IdleTimeout: idle, PollingDuration: 3 * time.Second,
		HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 20 * time.Second})

	// A connection that made one request and then says nothing.
	c := tg.rawConn()
	br := bufio.NewReader(c)
	fmt.Fprint(c, "GET /socket.io/1/ HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	sid, _, _ := strings.Cut(string(b), ":")
	waitUntil(t, "the connection counted idle", func() bool { return gaugeValue(t, tg.g.metrics.IdleConnections) == 1 })
	took, closed := closedWithin(c, idle+4*time.Second)
	if !closed || took > idle+3*time.Second {
		t.Fatalf("idle connection: closed %v after %v, want closed after about %v", closed, took, idle)
	}
	waitUntil(t, "the idle gauge back to 0", func() bool { return gaugeValue(t, tg.g.metrics.IdleConnections) == 0 })

	// A poll parked for the polling duration (3 s, longer than the idle
	// timeout) on a keep-alive connection is answered, not cut.
	p := tg.rawConn()
	pr := bufio.NewReader(p)
	fmt.Fprintf(p, "GET /socket.io/1/xhr-polling/%s?t=1 HTTP/1.1\r\nHost: x\r\n\r\n", sid)
	if resp, err := http.ReadResponse(pr, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first poll: %v %v", resp, err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	start := time.Now()
	fmt.Fprintf(p, "GET /socket.io/1/xhr-polling/%s?t=2 HTTP/1.1\r\nHost: x\r\n\r\n", sid)
	_ = p.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(pr, nil)
	if err != nil {
		t.Fatalf("parked poll cut after %v: %v", time.Since(start), err)
	}
	b, _ = io.ReadAll(resp.Body)
	if string(b) != "8::" || time.Since(start) < 2*time.Second {
		t.Fatalf("parked poll: %q after %v, want 8:: after the polling duration", b, time.Since(start))
	}

	// A websocket held for three idle timeouts still carries packets.
	wsid, ws := tg.openWS()
	time.Sleep(3 * idle)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("3:::still")); err != nil {
		t.Fatal(err)
	}
	tg.waitSignals(wsid, "connect", "message still")
}
