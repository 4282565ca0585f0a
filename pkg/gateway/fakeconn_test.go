package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeConn is a conn in memory, the socket end of a streamConn under test.
// It records every packet written, in order, and the batches they came in;
// it can keep what TryWrite is given (a socket whose buffer is full), hold
// Flush and Write until released (a client that does not read), or fail
// writes. It checks the conn contract: one caller at a time, Flush right
// after a TryWrite that kept something, no write after a failed one, no
// write after Close. Like wsengine.Conn, closing it ends its reads: it calls
// ReadsEnded on its handler once, unless the test says a reader still
// runs (readerRuns).
type fakeConn struct {
	t *testing.T

	inside atomic.Int32 // callers inside a method at once: at most 1

	mu         sync.Mutex
	written    []string      // packets written, in order; "(own)" for a control write, "(closed)" for Close
	batches    [][]string    // each successful TryWrite, Flush or Write with packets
	tryWrites  int           // TryWrite calls
	full       bool          // TryWrite keeps everything for Flush
	kept       []string      // what TryWrite kept
	hold       chan struct{} // non-nil: Flush and Write wait until it is closed
	fail       error         // non-nil: writes fail with it
	failed     error         // the first failed write
	own        bool          // a control write is due (as a websocket's pong)
	closes     int           // Close calls
	h          *streamConn   // the handler whose reads Close ends (nil: none)
	readerRuns bool          // a reader runs: Close does not end the reads itself
	readsEnded bool
	changed    chan struct{} // signalled after each write and Close
}

func newFakeConn(t *testing.T) *fakeConn {
	return &fakeConn{t: t, changed: make(chan struct{}, 1)}
}

func (f *fakeConn) enter() func() {
	if f.inside.Add(1) != 1 {
		f.t.Error("two goroutines in a conn's methods at once")
	}
	return func() { f.inside.Add(-1) }
}

func (f *fakeConn) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// writeLocked records packets (and the control write due) or fails.
func (f *fakeConn) writeLocked(packets []string) error {
	switch {
	case f.closes > 0:
		f.t.Error("write after Close")
	case f.kept != nil:
		f.t.Error("a write while TryWrite's rest waits for Flush")
	}
	if f.failed != nil {
		return f.failed
	}
	if f.fail != nil {
		f.failed = f.fail
		return f.fail
	}
	if f.own {
		f.written = append(f.written, "(own)")
		f.own = false
	}
	if len(packets) > 0 {
		f.written = append(f.written, packets...)
		f.batches = append(f.batches, slices.Clone(packets))
	}
	return nil
}

func (f *fakeConn) TryWrite(packets []string) (bool, error) {
	defer f.enter()()
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.signal()
	f.tryWrites++
	if f.full && f.failed == nil {
		f.kept = slices.Clone(packets)
		return false, nil
	}
	if err := f.writeLocked(packets); err != nil {
		return false, err
	}
	return true, nil
}

// wait waits while writes are held.
func (f *fakeConn) wait() {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
}

func (f *fakeConn) Flush() error {
	defer f.enter()()
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.signal()
	kept := f.kept
	f.kept = nil
	return f.writeLocked(kept)
}

func (f *fakeConn) Write(packets []string) error {
	defer f.enter()()
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.signal()
	return f.writeLocked(packets)
}

func (f *fakeConn) Close() error {
	exit := f.enter()
	f.mu.Lock()
	f.closes++
	if f.closes > 1 {
		f.t.Error("Close called twice")
	}
	f.written = append(f.written, "(closed)")
	h := f.h
	end := h != nil && !f.readerRuns && !f.readsEnded
	f.readsEnded = f.readsEnded || end
	f.mu.Unlock()
	f.signal()
	exit()
	if end {
		h.ReadsEnded(net.ErrClosed) // as wsengine.Conn does for a parked reader
	}
	return nil
}

// endReads ends the reads as a reader would, with err.
func (f *fakeConn) endReads(err error) {
	f.mu.Lock()
	already := f.readsEnded
	f.readsEnded = true
	h := f.h
	f.mu.Unlock()
	if !already && h != nil {
		h.ReadsEnded(err)
	}
}

// set changes the fake's behaviour under its lock.
func (f *fakeConn) set(change func(f *fakeConn)) {
	f.mu.Lock()
	change(f)
	f.mu.Unlock()
}

func (f *fakeConn) packets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.written)
}

func (f *fakeConn) closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closes > 0
}

// waitWritten waits until the packets written are want.
func (f *fakeConn) waitWritten(want ...string) {
	f.t.Helper()
	deadline := time.After(5 * time.Second)
	for !slices.Equal(f.packets(), want) {
		select {
		case <-f.changed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			f.t.Fatalf("written %q, want %q", f.packets(), want)
		}
	}
}

// waitClosed waits until Close was called.
func (f *fakeConn) waitClosed() {
	f.t.Helper()
	waitUntil(f.t, "the conn closed", f.closed)
}

func testGateway(sendQueue int) *Gateway {
	cfg := Config{SendQueue: sendQueue, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.defaults()
	return &Gateway{cfg: cfg, metrics: NewMetrics(nil), log: cfg.Logger}
}

// waitWriterIdle waits until no goroutine owns the connection's writes.
func waitWriterIdle(t *testing.T, s *streamConn) {
	t.Helper()
	waitUntil(t, "the writer to exit with the queue empty", func() bool { return !writing(s) })
}

// writing reports whether a goroutine owns s's writes.
func writing(s *streamConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writing
}

// errBrokenPipe is the fake's failed write.
var errBrokenPipe = errors.New("fake: broken pipe")

// fakeStream opens a new session on tg's gateway and holds it here on f,
// as serveWebSocket (websocket: f ends its reads) or serveHTMLFile does,
// and waits for its 1::.
func (tg *liveGateway) fakeStream(transport string, f *fakeConn) *streamConn {
	tg.t.Helper()
	s, first := tg.openFake(transport, f)
	tg.g.holdConn(s, first)
	f.waitWritten("1::")
	return s
}

// openFake opens a new session on tg's gateway on f, not started yet; it
// returns the packets to start it with.
func (tg *liveGateway) openFake(transport string, f *fakeConn) (*streamConn, []string) {
	tg.t.Helper()
	sid := tg.handshake()
	reads := transport != TransportHTMLFile
	s := tg.g.newStreamConn(sid, transport, f, reads)
	if reads {
		f.set(func(f *fakeConn) { f.h = s })
	}
	first, err := tg.g.openConn(context.Background(), s)
	if err != nil {
		tg.t.Fatal(err)
	}
	return s, first
}
