package wsengine

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// recorder is a Handler that records what it is given.
type recorder struct {
	mu     sync.Mutex
	frames []string // "text:..." or "binary:..."
	due    int      // ControlDue calls
	ended  chan error
	stop   string // Frame returns false for this payload
}

func newRecorder() *recorder { return &recorder{ended: make(chan error, 2)} }

func (r *recorder) Frame(text bool, data []byte) bool {
	kind := "binary:"
	if text {
		kind = "text:"
	}
	r.mu.Lock()
	r.frames = append(r.frames, kind+string(data))
	r.mu.Unlock()
	return string(data) != r.stop || r.stop == ""
}

func (r *recorder) ControlDue() {
	r.mu.Lock()
	r.due++
	r.mu.Unlock()
}

func (r *recorder) ReadsEnded(err error) { r.ended <- err }

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.frames...)
}

func (r *recorder) dues() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.due
}

// waitFor polls cond every 5 ms until it holds or 5 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitEnded waits for the reads' end and returns its error.
func (r *recorder) waitEnded(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.ended:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("reads did not end")
		return nil
	}
}

// pair is a server Conn and the gorilla client connected to it.
type pair struct {
	c      *Conn
	client *websocket.Conn
}

// server upgrades every request with o and hands over the Conns, not
// started.
type server struct {
	url   string
	conns chan *Conn
}

func newServer(t *testing.T, o Options) *server {
	t.Helper()
	s := &server{conns: make(chan *Conn, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsUpgrade(r) {
			http.Error(w, "upgrade expected", http.StatusBadRequest)
			return
		}
		c, err := Upgrade(w, r, o)
		if err != nil {
			t.Error(err)
			return
		}
		s.conns <- c
	}))
	t.Cleanup(srv.Close)
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return s
}

// dial connects a client and returns both ends.
func (s *server) dial(t *testing.T) pair {
	t.Helper()
	client, _, err := websocket.DefaultDialer.Dial(s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return pair{c: <-s.conns, client: client}
}

// dial upgrades one connection with o on a server of its own.
func dial(t *testing.T, o Options) pair {
	t.Helper()
	return newServer(t, o).dial(t)
}

// smallBuffers makes both ends' socket buffers small, so that a client that
// does not read soon blocks the server's writes.
func smallBuffers(p pair) {
	if tcp, ok := p.c.nc.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(64 << 10)
	}
	if tcp, ok := p.client.NetConn().(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(64 << 10)
	}
}

// read reads the client's next frame within 5 s.
func read(t *testing.T, ws *websocket.Conn) (int, string, error) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := ws.ReadMessage()
	return typ, string(b), err
}

// Every packet is written as its own text frame, whatever its length (the
// 7-bit, 16-bit and 64-bit length forms and their edges), after the pong
// due; a client's ping is reported with ControlDue.
func TestWriteOneFramePerPacket(t *testing.T) {
	p := dial(t, Options{})
	h := newRecorder()
	p.c.Start(h)
	pong := make(chan string, 1)
	p.client.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := p.client.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ControlDue", func() bool { return h.dues() == 1 })
	var packets []string
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		packets = append(packets, "3:::"+strings.Repeat("x", n))
	}
	if err := p.c.Write(packets); err != nil {
		t.Fatal(err)
	}
	for i, want := range packets {
		typ, got, err := read(t, p.client)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if typ != websocket.TextMessage || got != want {
			t.Fatalf("packet %d: type %d, %d bytes, want %d", i, typ, len(got), len(want))
		}
	}
	select {
	case s := <-pong:
		if s != "p" {
			t.Errorf("pong %q", s)
		}
	default:
		t.Error("no pong before the packets")
	}
	_ = p.c.Close()
	h.waitEnded(t)
}

// The frames a client sent together are all handed over in one burst,
// each once, in order; binary frames are marked. This needs gorilla to
// parse from the bufio.Reader the hijacker gave it: if it read into a
// buffer of its own, the frames after the first would wait there, with
// nothing on the socket to wake a reader.
func TestBurstReadsEveryBufferedFrame(t *testing.T) {
	p := dial(t, Options{})
	h := newRecorder()
	p.c.Start(h)
	// Masked client frames, mask key 0 (the payload as is), in one write.
	var raw []byte
	for _, f := range []struct {
		op      byte
		payload string
	}{{0x1, "one"}, {0x2, "two"}, {0x1, "three"}} {
		raw = append(raw, 0x80|f.op, 0x80|byte(len(f.payload)), 0, 0, 0, 0)
		raw = append(raw, f.payload...)
	}
	if _, err := p.client.NetConn().Write(raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three frames", func() bool { return len(h.got()) == 3 })
	if got := strings.Join(h.got(), ","); got != "text:one,binary:two,text:three" {
		t.Fatalf("frames %s", got)
	}
	// And the connection is parked again: the next frame wakes a reader.
	if err := p.client.WriteMessage(websocket.TextMessage, []byte("four")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a fourth frame", func() bool { return len(h.got()) == 4 })
	_ = p.c.Close()
	if err := h.waitEnded(t); !errors.Is(err, net.ErrClosed) {
		t.Errorf("reads ended with %v, want net.ErrClosed", err)
	}
}

// Reads end once: with ErrTooLarge for a frame over the limit, with nil
// when the handler stops them, with the read's error when the client
// closes.
func TestReadsEnded(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(ws *websocket.Conn) error
		stop string
		want func(err error) bool
	}{
		{"too large", func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, []byte("0123456789x")) },
			"", func(err error) bool { return errors.Is(err, ErrTooLarge) }},
		{"handler stops", func(ws *websocket.Conn) error { return ws.WriteMessage(websocket.TextMessage, []byte("0::")) },
			"0::", func(err error) bool { return err == nil }},
		{"client gone", func(ws *websocket.Conn) error { return ws.NetConn().Close() },
			"", func(err error) bool { return err != nil && !errors.Is(err, ErrTooLarge) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dial(t, Options{MaxMessageBytes: 10})
			h := newRecorder()
			h.stop = tc.stop
			p.c.Start(h)
			if err := tc.send(p.client); err != nil {
				t.Fatal(err)
			}
			if err := h.waitEnded(t); !tc.want(err) {
				t.Errorf("reads ended with %v", err)
			}
			_ = p.c.Close()
			select {
			case err := <-h.ended:
				t.Errorf("reads ended twice (%v)", err)
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}

// Close answers a client's close frame with its code; a connection closed
// here without one gets no close frame. Closing a parked connection reports
// the end of its reads before Close returns.
func TestClose(t *testing.T) {
	p := dial(t, Options{})
	h := newRecorder()
	p.c.Start(h)
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye")
	if err := p.client.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	h.waitEnded(t)
	if err := p.c.Write([]string{"3:::last"}); err != nil {
		t.Fatal(err)
	}
	_ = p.c.Close()
	if _, got, err := read(t, p.client); err != nil || got != "3:::last" {
		t.Fatalf("last packet %q, %v", got, err)
	}
	if _, _, err := read(t, p.client); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after the last packet: %v, want close 1001 echoed", err)
	}

	p = dial(t, Options{})
	h = newRecorder()
	p.c.Start(h)
	_ = p.c.Close()
	select {
	case err := <-h.ended:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("reads ended with %v, want net.ErrClosed", err)
		}
	default:
		t.Error("Close of a parked connection returned before its reads ended")
	}
	if _, _, err := read(t, p.client); err == nil || websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		t.Errorf("closed here: %v, want the connection dropped without a close frame", err)
	}
}

// Refuse writes its packet and a close frame with code 1000.
func TestRefuse(t *testing.T) {
	p := dial(t, Options{})
	p.c.Refuse("7:::1+0")
	if _, got, err := read(t, p.client); err != nil || got != "7:::1+0" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, _, err := read(t, p.client); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after the packet: %v, want close 1000", err)
	}
}

// TryWrite writes what the socket takes without blocking; when it does not
// take everything, Flush writes the rest, and Write what follows, in
// order.
func TestTryWriteKeepsTheRestForFlush(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("writes without blocking need the poller (Linux)")
	}
	p := dial(t, Options{})
	p.c.Start(newRecorder())
	smallBuffers(p)
	if done, err := p.c.TryWrite([]string{"3:::small"}); !done || err != nil {
		t.Fatalf("small packet: done %v, %v", done, err)
	}
	big := "3:::" + strings.Repeat("x", 8<<20)
	done, err := p.c.TryWrite([]string{big}) // the client does not read yet
	if done || err != nil {
		t.Fatalf("8 MiB into a socket nobody reads: done %v, %v", done, err)
	}
	flushed := make(chan error, 1)
	go func() {
		err := p.c.Flush()
		if err == nil {
			err = p.c.Write([]string{"3:::after"})
		}
		flushed <- err
	}()
	for _, want := range []string{"3:::small", big, "3:::after"} {
		if _, got, err := read(t, p.client); err != nil || got != want {
			t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(want))
		}
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
}

// After a failed write, writes fail at once with that error and write
// nothing; Close then writes no close frame either.
func TestNoWriteAfterAFailedOne(t *testing.T) {
	p := dial(t, Options{WriteTimeout: 300 * time.Millisecond})
	h := newRecorder()
	p.c.Start(h)
	smallBuffers(p)
	// The client closes (Close would echo it) and reads no more.
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := p.client.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	h.waitEnded(t)
	err := p.c.Write([]string{strings.Repeat("x", 16<<20)})
	if err == nil {
		t.Fatal("16 MiB written to a client that does not read")
	}
	start := time.Now()
	if err2 := p.c.Write([]string{"3:::x"}); err2 != err {
		t.Errorf("second write: %v, want %v", err2, err)
	}
	if done, err2 := p.c.TryWrite([]string{"3:::x"}); done || err2 != err {
		t.Errorf("TryWrite: %v, %v, want the first error", done, err2)
	}
	_ = p.c.Close()
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("writes and Close after the failure took %v: they waited for the socket", d)
	}
}

// An idle connection costs no goroutine: the poller starts a reader only
// when data comes, and it exits when it has read what came.
func TestIdleConnHasNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux only")
	}
	srv := newServer(t, Options{})
	warm := srv.dial(t) // starts the poller
	warm.c.Start(newRecorder())
	before := runtime.NumGoroutine()
	var pairs []pair
	for range 50 {
		p := srv.dial(t)
		h := newRecorder()
		p.c.Start(h)
		if err := p.client.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the frame", func() bool { return len(h.got()) == 1 })
		pairs = append(pairs, p)
	}
	waitFor(t, "readers to exit", func() bool { return runtime.NumGoroutine() <= before+3 })
	for _, p := range pairs {
		_ = p.c.Close()
	}
}
