package gateway

import (
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/gateway/internal/wsengine"
)

// The session logic of a streaming connection, on a fake conn: real Redis
// (the session's open and end are recorded there), no socket.

// Packets are written in the order they were queued: 1:: and the mailbox
// ahead of what came before start; a packet that finds the queue empty is
// written by the goroutine that queues it, with no writer goroutine left
// behind; when the socket does not take it at once, a writer goroutine
// flushes the rest and then writes what was queued meanwhile, in one
// batch, and exits.
func TestStreamQueueOrder(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	f := newFakeConn(t)
	s, first := tg.openFake(TransportWebSocket, f)
	s.send("3:::before start")
	if got := f.packets(); len(got) != 0 {
		t.Fatalf("written before start: %q", got)
	}
	tg.g.holdConn(s, first)
	f.waitWritten("1::", "3:::before start")
	waitWriterIdle(t, s)

	s.send("3:::inline")
	if got := f.packets(); got[len(got)-1] != "3:::inline" {
		t.Fatalf("after send returned: written %q, want 3:::inline written by it", got)
	}
	if writing(s) {
		t.Fatal("a writer goroutine owns the writes after a packet the socket took whole")
	}

	hold := make(chan struct{})
	f.set(func(f *fakeConn) { f.full, f.hold = true, hold })
	s.send("3:::a") // kept by TryWrite: a writer goroutine flushes it, held
	s.send("3:::b")
	s.send("3:::c")
	tg.publish(bus.Route{Op: bus.OpDeliver, SID: s.sid, Packet: "3:::routed"})
	waitUntil(t, "the routed packet queued", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.queue) == 3
	})
	close(hold)
	f.waitWritten("1::", "3:::before start", "3:::inline", "3:::a", "3:::b", "3:::c", "3:::routed")
	waitWriterIdle(t, s)
	f.mu.Lock()
	batches := f.batches
	f.mu.Unlock()
	if n := len(batches); n < 2 || !slices.Equal(batches[n-2], []string{"3:::a"}) ||
		!slices.Equal(batches[n-1], []string{"3:::b", "3:::c", "3:::routed"}) {
		t.Errorf("batches %q, want [3:::a] then the three queued meanwhile in one", batches)
	}
	f.set(func(f *fakeConn) { f.full = false })
	s.closeLocal(bus.ReasonShutdown)
	tg.waitSignals(s.sid, "connect", "disconnect reason=shutdown")
}

// A conn with something of its own to write (a websocket's pong) gets a
// write even with no packet waiting; once the connection stopped, it gets
// none.
func TestStreamControlDue(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	f := newFakeConn(t)
	s := tg.fakeStream(TransportWebSocket, f)
	waitWriterIdle(t, s)
	f.set(func(f *fakeConn) { f.own = true })
	s.ControlDue()
	f.waitWritten("1::", "(own)")
	waitWriterIdle(t, s)

	f.set(func(f *fakeConn) { f.readerRuns = true })
	s.closeLocal(bus.ReasonShutdown)
	f.waitClosed()
	s.ControlDue()
	f.endReads(net.ErrClosed)
	<-s.finished
	if got := f.packets(); !slices.Equal(got, []string{"1::", "(own)", "(closed)"}) {
		t.Errorf("written %q", got)
	}
}

// Heartbeats: the wheel queues 2:: every interval; a websocket whose
// client answers lives on, one silent for the heartbeat timeout is closed
// with reason heartbeat_timeout. An htmlfile stream's signs of life are its
// POSTs (heard); silent, it is closed after Redis says it was not heard
// elsewhere either.
func TestStreamHeartbeats(t *testing.T) {
	const interval, timeout = 50 * time.Millisecond, 300 * time.Millisecond
	tg := newLiveGateway(t, Config{HeartbeatInterval: interval, HeartbeatTimeout: timeout})
	count := func(f *fakeConn) int {
		n := 0
		for _, p := range f.packets() {
			if p == "2::" {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		transport string
		answer    func(s *streamConn)
	}{
		{TransportWebSocket, func(s *streamConn) { s.Frame(true, []byte("2::")) }},
		{TransportHTMLFile, func(s *streamConn) { s.heard(time.Now()) }},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			f := newFakeConn(t)
			s := tg.fakeStream(tc.transport, f)
			for end := time.Now().Add(3 * timeout); time.Now().Before(end); {
				n := count(f)
				waitUntil(t, "a heartbeat", func() bool { return count(f) > n })
				tc.answer(s)
			}
			if f.closed() {
				t.Fatal("closed while its client answered")
			}
			silentFrom := time.Now()
			f.waitClosed()
			if d := time.Since(silentFrom); d < timeout-2*interval {
				t.Errorf("closed %v after the last answer, before the heartbeat timeout", d)
			}
			tg.waitSignals(s.sid, "connect", "disconnect reason=heartbeat_timeout")
		})
	}
	if n := counterValue(t, tg.g.metrics.HeartbeatLookups.WithLabelValues("silent")); n < 1 {
		t.Errorf("htmlfile lookups found silent: %v, want at least 1", n)
	}
}

// How a connection ends, and what its session's end records: nothing when
// it ended elsewhere (its last packet written first), the reason decided
// here after what was queued is written, transport_close when its client
// closed it, sent a frame over the limit or a write failed, client after
// its 0::. The end is recorded once the writer closed the conn and the
// reads ended, whichever comes last.
func TestStreamClosePaths(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	for _, tc := range []struct {
		name    string
		end     func(s *streamConn, f *fakeConn)
		written []string // after 1::
		signal  string   // the last signal ("connect": no end recorded here)
	}{
		{"remote", func(s *streamConn, f *fakeConn) { s.closeRemote("0::") },
			[]string{"0::", "(closed)"}, "connect"},
		{"local", func(s *streamConn, f *fakeConn) {
			hold := make(chan struct{})
			f.set(func(f *fakeConn) { f.full, f.hold = true, hold })
			s.send("3:::held")
			s.send("3:::queued")
			s.closeLocal(bus.ReasonShutdown)
			s.send("3:::after the end")
			close(hold)
		}, []string{"3:::held", "3:::queued", "(closed)"}, "disconnect reason=shutdown"},
		{"client closed", func(s *streamConn, f *fakeConn) { f.endReads(io.EOF) },
			[]string{"(closed)"}, "disconnect reason=transport_close"},
		{"frame too large", func(s *streamConn, f *fakeConn) { f.endReads(wsengine.ErrTooLarge) },
			[]string{"(closed)"}, "disconnect reason=transport_close"},
		{"write failed", func(s *streamConn, f *fakeConn) {
			f.set(func(f *fakeConn) { f.fail = errBrokenPipe })
			s.send("3:::lost")
			s.send("3:::lost too")
		}, []string{"(closed)"}, "disconnect reason=transport_close"},
		{"client's 0::", func(s *streamConn, f *fakeConn) {
			if s.Frame(true, []byte("0::")) {
				t.Error("reading goes on after 0::")
			}
			f.endReads(nil)
		}, []string{"(closed)"}, "disconnect reason=client"},
		{"reads end last", func(s *streamConn, f *fakeConn) {
			f.set(func(f *fakeConn) { f.readerRuns = true })
			s.closeLocal(bus.ReasonServer)
			f.waitClosed()
			select {
			case <-s.finished:
				t.Error("the end was recorded while reads went on")
			case <-time.After(100 * time.Millisecond):
			}
			f.endReads(net.ErrClosed)
		}, []string{"(closed)"}, "disconnect reason=server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tooLarge := tg.rejections(rejectPacketTooLarge)
			f := newFakeConn(t)
			s := tg.fakeStream(TransportWebSocket, f)
			tc.end(s, f)
			f.waitWritten(append([]string{"1::"}, tc.written...)...)
			select {
			case <-s.finished:
			case <-time.After(5 * time.Second):
				t.Fatal("the end was not recorded")
			}
			if tg.g.conn(s.sid) != nil {
				t.Error("the connection is still registered")
			}
			if tc.signal == "connect" {
				if got := tg.signals(s.sid); !slices.Equal(got, []string{"connect"}) {
					t.Errorf("signals %q: an end recorded for a session ended elsewhere", got)
				}
			} else {
				tg.waitSignals(s.sid, "connect", tc.signal)
			}
			wantTooLarge := tooLarge
			if tc.name == "frame too large" {
				wantTooLarge++
			}
			if got := tg.rejections(rejectPacketTooLarge); got != wantTooLarge {
				t.Errorf("packet_too_large rejections %v, want %v", got, wantTooLarge)
			}
		})
	}
	if n := tg.g.held.Load(); n != 0 {
		t.Errorf("%d connections still counted as held", n)
	}
}

// A client that does not read: beyond Config.SendQueue packets waiting, it
// is disconnected with reason overflow, once, counted and logged; what was
// queued is still written (if the client reads again) before the close.
func TestStreamSlowClientCutOff(t *testing.T) {
	const queue = 4
	tg := newLiveGateway(t, Config{SendQueue: queue})
	f := newFakeConn(t)
	s := tg.fakeStream(TransportWebSocket, f)
	waitWriterIdle(t, s)
	hold := make(chan struct{})
	f.set(func(f *fakeConn) { f.full, f.hold = true, hold })
	want := []string{"1::"}
	for i := range queue + 1 { // the first is kept by TryWrite, the others queued
		p := "3:::" + strconv.Itoa(i)
		s.send(p)
		want = append(want, p)
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		t.Fatal("stopped with the queue not over its bound")
	}
	for i := range 3 {
		s.send("3:::over " + strconv.Itoa(i))
	}
	s.mu.Lock()
	stopped, reason := s.stopped, s.reason
	s.mu.Unlock()
	if !stopped || reason != bus.ReasonOverflow {
		t.Fatalf("stopped %v reason %q, want overflow", stopped, reason)
	}
	if n := counterValue(t, tg.g.metrics.QueueOverflows); n != 1 {
		t.Errorf("overflows counted %v, want 1", n)
	}
	close(hold)
	f.waitWritten(append(want, "(closed)")...)
	tg.waitSignals(s.sid, "connect", "disconnect reason=overflow")
}

// A websocket's frames: text frames are packets (a heartbeat answer is
// only a sign of life); a binary frame is rejected and reading goes on.
func TestStreamFrames(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	f := newFakeConn(t)
	s := tg.fakeStream(TransportWebSocket, f)
	before := tg.rejections(rejectBinaryFrame)
	s.lastRead.Store(0)
	if !s.Frame(false, []byte{1, 2}) {
		t.Error("reading stops after a binary frame")
	}
	if tg.rejections(rejectBinaryFrame) != before+1 {
		t.Error("binary frame not rejected")
	}
	if s.silence() > time.Minute {
		t.Error("a frame read is not a sign of life")
	}
	for _, p := range []string{"2::", `5:1+::{"name":"x","args":[]}`, "1::/chat", "3::/chat:hi"} {
		if !s.Frame(true, []byte(p)) {
			t.Fatalf("reading stops after %q", p)
		}
	}
	f.waitWritten("1::", "1::/chat")
	tg.waitSignals(s.sid, "connect", `event x id=1+`, "connect /chat", "message /chat hi")
	if !s.inNamespace("/chat") {
		t.Error("/chat not joined")
	}
	if strings.Contains(strings.Join(tg.signals(s.sid), "\n"), "heartbeat") {
		t.Error("a heartbeat answer became a signal")
	}
	f.endReads(io.EOF)
	tg.waitSignals(s.sid, "disconnect reason=transport_close")
}

// held returns the bytes s holds for its client: queued, and taken and not
// yet written.
func held(s *streamConn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.qbytes + s.fbytes
}

// A client that does not read large packets: beyond Config.SendQueueBytes
// held (queued, or being written and not taken by the socket), it is
// disconnected with reason overflow, counted as a byte overflow, though far
// fewer packets than Config.SendQueue wait. One packet larger than the
// bound is taken while nothing else is held.
func TestStreamSlowClientCutOffByBytes(t *testing.T) {
	const limit = 1000
	tg := newLiveGateway(t, Config{SendQueueBytes: limit})
	f := newFakeConn(t)
	s := tg.fakeStream(TransportWebSocket, f)
	waitWriterIdle(t, s)

	big := "3:::" + strings.Repeat("b", 2*limit)
	s.send(big) // nothing held: written, whatever its size
	f.waitWritten("1::", big)
	waitWriterIdle(t, s)
	if h := held(s); h != 0 {
		t.Fatalf("%d bytes held after the write", h)
	}

	hold := make(chan struct{})
	f.set(func(f *fakeConn) { f.full, f.hold = true, hold })
	p := "3:::" + strings.Repeat("x", 296) // 300 bytes
	for range 3 {                          // the first kept by TryWrite, two queued: 900 bytes held
		s.send(p)
	}
	if h := held(s); h != 900 {
		t.Fatalf("held %d bytes, want 900", h)
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		t.Fatal("stopped with the bytes held within the bound")
	}
	s.send(p) // 1200 > 1000
	s.mu.Lock()
	stopped, reason := s.stopped, s.reason
	s.mu.Unlock()
	if !stopped || reason != bus.ReasonOverflow {
		t.Fatalf("stopped %v reason %q, want overflow", stopped, reason)
	}
	if n := counterValue(t, tg.g.metrics.QueueByteOverflows); n != 1 {
		t.Errorf("byte overflows counted %v, want 1", n)
	}
	if n := counterValue(t, tg.g.metrics.QueueOverflows); n != 1 {
		t.Errorf("overflows counted %v, want 1", n)
	}
	close(hold)
	f.waitWritten("1::", big, p, p, p, "(closed)")
	tg.waitSignals(s.sid, "connect", "disconnect reason=overflow")
}

// The attack of issue 16: a websocket that never reads while 500 KB
// packets are routed to it (what the echo app does with what it sends).
// The bytes the gateway holds for it never pass the default bound (4 MiB),
// it is cut off (overflow) after a few packets (what was queued is offered
// to it until the write timeout, then the connection closes), and a
// reading websocket in the same run gets its packets throughout.
func TestWebSocketNonReaderBoundedByBytes(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	limit := tg.g.cfg.SendQueueBytes
	if limit != DefaultSendQueueBytes {
		t.Fatalf("SendQueueBytes %d, want the default %d", limit, DefaultSendQueueBytes)
	}
	sid, _ := tg.openWS() // never read again
	bsid, bystander := tg.openWS()
	s := tg.g.conn(sid)
	if s == nil {
		t.Fatal("the websocket is not held")
	}

	peak := 0
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the bytes held for the non-reader, every millisecond
		defer close(sampled)
		for {
			peak = max(peak, held(s))
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	packet := "3:::" + strings.Repeat("z", 500<<10)
	sent := 0
	for ; sent < 200; sent++ {
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			break
		}
		tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: packet})
		if sent%10 == 0 {
			tg.publish(bus.Route{Op: bus.OpDeliver, SID: bsid, Packet: "3:::bystander " + strconv.Itoa(sent)})
			expectFrame(t, bystander, "3:::bystander "+strconv.Itoa(sent))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// What was queued is still offered to the client until the write
	// timeout: the end comes after it.
	select {
	case <-s.finished:
	case <-time.After(writeTimeout + 10*time.Second):
		t.Fatalf("not ended after %d packets (%d bytes held)", sent, held(s))
	}
	tg.waitSignals(sid, "connect", "disconnect reason=overflow")
	close(stop)
	<-sampled
	t.Logf("cut off after %d packets of 500 KiB; at most %d bytes held (bound %d)", sent, peak, limit)
	if peak > limit {
		t.Errorf("held %d bytes, over the bound %d", peak, limit)
	}
	if n := counterValue(t, tg.g.metrics.QueueByteOverflows); n != 1 {
		t.Errorf("byte overflows counted %v, want 1", n)
	}
	tg.publish(bus.Route{Op: bus.OpDeliver, SID: bsid, Packet: "3:::after"})
	expectFrame(t, bystander, "3:::after")
}
