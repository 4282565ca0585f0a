package gateway

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
)

// A batch is written as one frame per packet, whatever the payload length
// (the 7-bit, 16-bit and 64-bit length forms and their edges), after the
// pong; a client's close frame is answered.
func TestWriteFramesOnePacketPerFrame(t *testing.T) {
	var packets []string
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		packets = append(packets, "3:::"+strings.Repeat("x", n))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		s := &streamConn{nc: conn.NetConn()}
		if err := s.writeFrames(batch{packets: packets, pong: "p", pongDue: true}); err != nil {
			t.Error(err)
		}
		if err := s.writeFrames(batch{final: true, closeFrame: true, closeCode: websocket.CloseGoingAway}); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	pong := make(chan string, 1)
	ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, want := range packets {
		typ, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if typ != websocket.TextMessage || string(b) != want {
			t.Fatalf("packet %d: type %d, %d bytes, want %d", i, typ, len(b), len(want))
		}
	}
	select {
	case p := <-pong:
		if p != "p" {
			t.Errorf("pong %q", p)
		}
	default:
		t.Error("no pong before the packets")
	}
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after the packets: %v, want close 1001", err)
	}
}

func testGateway(sendQueue int) *Gateway {
	cfg := Config{SendQueue: sendQueue, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.defaults()
	return &Gateway{cfg: cfg, metrics: NewMetrics(nil), log: cfg.Logger}
}

// An idle stream has no writer goroutine: one starts for queued packets and
// exits once they are written.
func TestWriterRunsOnlyWhileThereIsSomethingToWrite(t *testing.T) {
	g := testGateway(8)
	server, client := net.Pipe()
	defer client.Close()
	s := g.newStreamConn("sid", TransportWebSocket, server)
	s.start([]string{"1::"})
	s.send("2::")
	got := make([]byte, 0, 16)
	buf := make([]byte, 16)
	for len(got) < 10 {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "\x81\x031::\x81\x032::" {
		t.Fatalf("frames %q", got)
	}
	waitWriterIdle(t, s)
}

// waitWriterIdle waits until no goroutine owns the stream's writes.
func waitWriterIdle(t *testing.T, s *streamConn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		writing := s.writing
		s.mu.Unlock()
		if !writing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not exit with the queue empty")
		}
		time.Sleep(time.Millisecond)
	}
}

// Beyond SendQueue packets waiting, the client is disconnected with reason
// overflow, once, and counted.
func TestSendQueueOverflow(t *testing.T) {
	g := testGateway(4)
	server, client := net.Pipe() // unread: the writer blocks in its first write
	s := g.newStreamConn("sid", TransportWebSocket, server)
	s.start(nil)
	for i := 0; i < 20; i++ {
		s.send("3:::x")
	}
	s.mu.Lock()
	stopped, reason := s.stopped, s.reason
	s.mu.Unlock()
	if !stopped || reason != "overflow" {
		t.Fatalf("stopped %v reason %q, want overflow", stopped, reason)
	}
	var m dto.Metric
	if err := g.metrics.QueueOverflows.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 1 {
		t.Fatalf("overflows counted %v, want 1", n)
	}
	client.Close() // the blocked write fails; the writer ends the connection
	select {
	case <-s.written:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer did not end the connection")
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { sc.Close(); c.Close() })
	return sc.(*net.TCPConn), c.(*net.TCPConn)
}

// A packet is written by the goroutine that queues it, without blocking;
// when the socket does not take it whole, a writer goroutine writes the
// rest, then what was queued meanwhile, in order, and exits.
func TestInlineWriteHandsTheRestToAWriter(t *testing.T) {
	g := testGateway(8)
	server, client := tcpPair(t)
	_ = server.SetWriteBuffer(64 << 10)
	s := g.newStreamConn("sid", TransportWebSocket, server)
	rc, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	s.rc = rc
	s.start(nil)
	waitWriterIdle(t, s)
	s.send("3:::small")
	waitWriterIdle(t, s) // written inline: nothing was left for a writer
	big := "3:::" + strings.Repeat("x", 8<<20)
	done := make(chan struct{})
	go func() { // the client does not read yet: the socket cannot take it all
		defer close(done)
		s.send(big)
		s.send("3:::after")
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("send blocked on a full socket")
	}
	want := string(appendFrame(nil, websocket.TextMessage, "3:::small")) +
		string(appendFrame(nil, websocket.TextMessage, big)) +
		string(appendFrame(nil, websocket.TextMessage, "3:::after"))
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("frames out of order or damaged")
	}
	waitWriterIdle(t, s)
}
