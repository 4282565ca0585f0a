package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
)

// A websocket held here costs, while idle: the socket, gorilla's Conn with
// a read buffer of Config.ReadBufferBytes, and the streamConn. No goroutine (the
// poller starts one to read when data comes), no write buffer (the writer
// goroutine exists while there is something to write), no timer
// (heartbeats and the heartbeat timeout come from the wheel), and no
// net/http state (the handler returns after the upgrade).

// upgrader holds no write buffer per connection: the streamConn frames its
// packets itself, and gorilla's own writes (the open-failure path, its
// protocol-error close) borrow a pooled buffer. ReadBufferSize 0 makes
// gorilla read from the bufio.Reader the hijacker hands it.
var upgrader = websocket.Upgrader{
	WriteBufferPool: &sync.Pool{},
}

// hijacker gives gorilla a read buffer of the configured size that the
// streamConn keeps, so the reader knows whether a frame is already buffered
// (gorilla reuses a hijacked bufio.Reader larger than 256 bytes).
type hijacker struct {
	http.ResponseWriter
	size int
	br   *bufio.Reader
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // gorilla refuses a client that sent data before the 101
	}
	h.br = bufio.NewReaderSize(nc, h.size)
	return nc, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// serveWebSocket handles websocket and flashsocket (RFC 6455). After the
// upgrade it starts the connection's reader and returns, so net/http frees the
// request, its buffers and the handler's stack.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request, transport, sid string) {
	if !websocket.IsWebSocketUpgrade(r) {
		g.reject(w, r, http.StatusBadRequest, rejectNotWebSocket, "websocket upgrade expected")
		return
	}
	if g.overConnections() {
		g.reject(w, r, http.StatusServiceUnavailable, rejectOverConnections, "server over capacity")
		return
	}
	up := upgrader
	up.CheckOrigin = func(r *http.Request) bool {
		return originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer"))
	}
	hj := &hijacker{ResponseWriter: w, size: max(g.cfg.ReadBufferBytes, 512)}
	conn, err := up.Upgrade(hj, r, nil)
	if err != nil {
		g.rejected(rejectWebSocketUpgrade, "err", err)
		return
	}
	// The request's context must not be used beyond the handler's upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s := g.newStreamConn(sid, transport, conn.NetConn())
	first, err := g.openConn(ctx, s)
	cancel()
	if err != nil {
		defer conn.Close()
		if pk := g.openFailed(transport, sid, err); pk != "" {
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			_ = conn.WriteMessage(websocket.TextMessage, []byte(pk))
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		return
	}
	g.metrics.Connections.WithLabelValues(transport).Inc()
	g.held.Add(1)
	s.ws, s.br = conn, hj.br
	s.lastRead.Store(time.Now().UnixNano())
	conn.SetReadLimit(int64(g.cfg.MaxPacketBytes))
	conn.SetPingHandler(s.onPing)
	conn.SetCloseHandler(s.onClose)
	s.mu.Lock()
	s.parked = true // the poller wakes a reader
	s.mu.Unlock()
	if s.br == nil || s.register() != nil {
		s.mu.Lock()
		s.parked = false
		s.mu.Unlock()
		go s.readBlocking()
	}
	s.start(first)
	g.heartbeats.add(s, g.cfg.HeartbeatInterval)
}

// readWake is started by the poller when a parked connection's socket has
// something to read.
func (s *streamConn) readWake() {
	s.mu.Lock()
	if !s.parked {
		s.mu.Unlock()
		return // the connection ended meanwhile, or a stale event
	}
	s.parked = false
	s.mu.Unlock()
	if !s.readBurst() {
		s.endReads()
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.endReads()
		return
	}
	if err := s.arm(); err != nil {
		s.mu.Unlock()
		s.closeLocal(bus.ReasonTransportClose)
		s.endReads()
		return
	}
	s.parked = true
	s.mu.Unlock()
}

// readBlocking is the reader where the poller is not available: a
// goroutine that waits in its read for the connection's life.
func (s *streamConn) readBlocking() {
	for s.readBurst() {
	}
	s.endReads()
}

// readBurst reads frames until none is buffered; it reports whether the
// connection goes on. It sets no read deadline: a client that stops in the
// middle of a frame stops updating lastRead, and the heartbeat wheel ends
// its connection at the heartbeat timeout, which closes the connection under
// the waiting read (a deadline per frame would cost a timer update per
// packet).
func (s *streamConn) readBurst() bool {
	for {
		typ, r, err := s.ws.NextReader()
		if err != nil {
			s.readFailed(err)
			return false
		}
		bp := readBufs.Get().(*[]byte)
		data, err := readAll(r, (*bp)[:0])
		if err != nil {
			s.readFailed(err)
			return false
		}
		s.lastRead.Store(time.Now().UnixNano())
		goOn := s.received(typ, data) // retains nothing of data
		if cap(data) <= maxWriteChunk {
			*bp = data[:0]
			readBufs.Put(bp)
		}
		if !goOn {
			return false
		}
		if s.br == nil || s.br.Buffered() == 0 {
			return true
		}
	}
}

// readBufs recycles the buffers frames are read into (a heartbeat answer
// would otherwise leave a buffer of garbage per connection and interval).
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readAll reads r to its end, appending to b.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// readFailed stops the connection for a frame over the limit; any other failed
// read (the client closed, or the connection was stopped and its socket
// closed) is ended by endReads with reason transport_close unless a reason
// was set already.
func (s *streamConn) readFailed(err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		s.g.rejected(rejectPacketTooLarge, "sid", s.sid, "limit", s.g.cfg.MaxPacketBytes)
		s.closeLocal(bus.ReasonTransportClose)
	}
}

// endReads ends a websocket once its reads ended: after the last signal
// committed and the writer's last write, it records the session's end. It
// runs once: in the reader, or (for a parked connection) after the writer.
func (s *streamConn) endReads() {
	if s.pending != nil {
		<-s.pending
	}
	s.closeLocal(bus.ReasonTransportClose)
	<-s.written
	s.unregister()
	s.finish()
	s.g.held.Add(-1)
	s.g.metrics.Connections.WithLabelValues(s.transport).Dec()
}

// received handles one data frame; it reports whether reading goes on.
func (s *streamConn) received(typ int, data []byte) bool {
	g := s.g
	if typ != websocket.TextMessage {
		g.rejected(rejectBinaryFrame, "sid", s.sid)
		return true
	}
	if fixed, repaired := g.repairIn(data, s.transport, s.sid); repaired {
		// The packet limit applies to what goes on (utf8.go).
		if len(fixed) > g.cfg.MaxPacketBytes {
			g.rejected(rejectPacketTooLarge, "sid", s.sid, "limit", g.cfg.MaxPacketBytes, "repaired_bytes", len(fixed))
			s.closeLocal(bus.ReasonTransportClose)
			return false
		}
		data = fixed
	}
	if string(data) == "2::" {
		// A heartbeat answer: liveness only (lastRead moved).
		g.metrics.packetIn(int(protocol.Heartbeat), len(data))
		return true
	}
	if s.rjoined == nil {
		s.rjoined = map[string]bool{"": true}
	}
	in := &inbound{sid: s.sid, transport: s.transport, joined: s.rjoined, reply: s.send}
	if reason := g.applyPacket(in, data); reason != notRejected {
		g.rejected(reason, "sid", s.sid)
		return true
	}
	if in.changed {
		// Copy the namespace set so broadcasts see a consistent view.
		s.setJoined(maps.Clone(s.rjoined))
	}
	if len(in.writes) > 0 {
		ch, err := g.committer.CommitNotify(context.Background(), s.sid, s.committed, in.writes...)
		if err != nil {
			s.closeLocal(bus.ReasonShutdown)
			return false
		}
		s.pending = ch
	}
	if in.ended {
		s.mu.Lock()
		s.remote = true // the committer ends the session, in order
		s.mu.Unlock()
		g.metrics.disconnected(bus.ReasonClient, 1)
		return false
	}
	return true
}

// committed is called by the committer with the result of each commit of
// the signals this websocket's client sent. A commit that failed or timed
// out (Redis down, stalled past the committer's timeout, refusing writes)
// ends the session at once: its transport is closed (never with 0::, so the
// 0.9 client reconnects) rather than leaving the client waiting for answers
// to packets that never reached a worker. Ending it records the end with
// reason transport_close if Redis takes writes again by then (otherwise the
// deadline reaper ends it later). Counted in
// realtime_gateway_commit_failures_total; logged at most once per
// commitFailLogEvery for a burst.
func (s *streamConn) committed(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	first := s.stopLocked(bus.ReasonTransportClose, false, "")
	s.mu.Unlock()
	if !first {
		return
	}
	g := s.g
	g.metrics.CommitFailures.Inc()
	if ok, skipped := g.commitFailLog.allow(time.Now(), commitFailLogEvery); ok {
		g.log.Warn("websocket sessions ended: a signal they sent was not committed to Redis; their clients reconnect",
			"err", err, "sessions_ended_not_logged", skipped)
	}
}

// commitFailLogEvery is the least time between two log lines about sessions
// ended because a commit failed.
const commitFailLogEvery = 5 * time.Second

// onPing queues the pong (gorilla's default would write it from the reader).
func (s *streamConn) onPing(data string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.pong, s.pongDue = data, true
		s.kickLocked()
	}
	return nil
}

// onClose remembers the client's close code; the writer echoes it in the
// close frame it writes as the connection ends.
func (s *streamConn) onClose(code int, _ string) error {
	s.mu.Lock()
	s.peerClose = code
	s.mu.Unlock()
	return nil
}

// canWriteInlineLocked reports whether a packet queued now may be written
// by the goroutine queueing it: a websocket registered with the poller (its
// raw connection allows a write that never blocks) with no writer running.
// writing is checked first: it stays true until start, which comes after
// register set rc, so rc is read only once it is set for good.
func (s *streamConn) canWriteInlineLocked() bool {
	return !s.writing && !s.stopped && s.wake == nil && s.rc != nil
}

// writeInline writes a batch the caller took (with writing set) without
// blocking; what the socket did not take, and anything queued meanwhile,
// goes to a writer goroutine.
func (s *streamConn) writeInline(b batch) {
	s.repairOut(b)
	bp := frameBufs.Get().(*[]byte)
	buf := appendBatch((*bp)[:0], b)
	n, err := s.tryWrite(buf)
	switch {
	case err != nil:
		putFrameBuf(bp, buf)
		s.closeLocal(bus.ReasonTransportClose)
		go s.writeLoop(true)
	case n < len(buf):
		go func() {
			err := s.writeAll(buf[n:])
			putFrameBuf(bp, buf)
			if err != nil {
				s.closeLocal(bus.ReasonTransportClose)
			} else {
				s.wrote(b)
			}
			s.writeLoop(err != nil)
		}()
	default:
		putFrameBuf(bp, buf)
		s.wrote(b)
		s.mu.Lock()
		more := len(s.queue) > 0 || s.pongDue || s.stopped
		if !more {
			s.writing = false
		}
		s.mu.Unlock()
		if more {
			go s.writeLoop(false)
		}
	}
}

// repairOut repairs invalid UTF-8 in a batch's packets before they are
// framed (utf8.go).
func (s *streamConn) repairOut(b batch) { s.g.repairOut(b.packets, s.transport, s.sid) }

// wrote counts a written batch.
func (s *streamConn) wrote(b batch) {
	s.g.metrics.packetsOut(b.packets)
	b.routed.observe(s.g)
}

// tryWrite writes what the socket takes at once, without blocking: n is
// what was written; err is nil when the socket's buffer was full.
func (s *streamConn) tryWrite(buf []byte) (n int, err error) {
	cerr := s.rc.Write(func(fd uintptr) bool {
		for n < len(buf) {
			m, werr := syscall.Write(int(fd), buf[n:])
			if werr == syscall.EINTR {
				continue
			}
			if werr == syscall.EAGAIN {
				break
			}
			if werr != nil {
				err = werr
				break
			}
			n += m
		}
		return true // never wait for the socket
	})
	if err == nil {
		err = cerr
	}
	return n, err
}

// writeAll writes buf, waiting for the socket at most writeTimeout; it
// tries a write that does not block first, which needs no deadline.
func (s *streamConn) writeAll(buf []byte) error {
	if s.rc != nil {
		n, err := s.tryWrite(buf)
		if err != nil || n == len(buf) {
			return err
		}
		buf = buf[n:]
	}
	if err := s.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	if _, err := s.nc.Write(buf); err != nil {
		return err
	}
	// A deadline left behind would fail the next write that does not block.
	return s.nc.SetWriteDeadline(time.Time{})
}

// writeLoop is a websocket's writer: it writes batches until the queue is
// empty (then exits) or the connection ends (then it writes the close frame and
// closes the connection). broken: a write failed already; write no more.
func (s *streamConn) writeLoop(broken bool) {
	for {
		b, ok := s.take()
		if !ok {
			return
		}
		if !broken {
			s.repairOut(b)
			if err := s.writeFrames(b); err != nil {
				broken = true
				s.closeLocal(bus.ReasonTransportClose)
			} else {
				s.wrote(b)
			}
		}
		if b.final {
			_ = s.nc.Close() // ends a reader waiting in its read
			close(s.written)
			s.mu.Lock()
			parked := s.parked
			s.parked = false
			s.mu.Unlock()
			if parked {
				s.endReads() // no reader will: the socket left the poller
			}
			return // writing stays true: no writer starts again
		}
	}
}

// maxWriteChunk is the size beyond which a batch is written in several
// syscalls rather than growing one buffer.
const maxWriteChunk = 64 << 10

// frameBufs recycles the buffers batches are framed in.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func putFrameBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 2*maxWriteChunk {
		*bp = buf[:0]
		frameBufs.Put(bp)
	}
}

// appendBatch frames a batch that is not final: the pong, then every packet
// as its own unmasked text frame (conformance row 9).
func appendBatch(buf []byte, b batch) []byte {
	if b.pongDue {
		buf = appendFrame(buf, websocket.PongMessage, b.pong)
	}
	for _, p := range b.packets {
		buf = appendFrame(buf, websocket.TextMessage, p)
	}
	return buf
}

// writeFrames writes a batch to a websocket client: the pong, every packet
// as its own unmasked text frame, and the answer to the client's close
// frame; in one write per maxWriteChunk bytes.
func (s *streamConn) writeFrames(b batch) error {
	bp := frameBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() { putFrameBuf(bp, buf) }()
	if b.pongDue {
		buf = appendFrame(buf, websocket.PongMessage, b.pong)
	}
	for _, p := range b.packets {
		buf = appendFrame(buf, websocket.TextMessage, p)
		if len(buf) >= maxWriteChunk {
			if err := s.writeAll(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if b.closeFrame {
		var payload string
		if b.closeCode != 0 {
			payload = string(websocket.FormatCloseMessage(b.closeCode, ""))
		}
		buf = appendFrame(buf, websocket.CloseMessage, payload)
	}
	if len(buf) > 0 {
		return s.writeAll(buf)
	}
	return nil
}

// appendFrame appends one unmasked, final RFC 6455 frame.
func appendFrame(buf []byte, opcode int, payload string) []byte {
	buf = append(buf, 0x80|byte(opcode))
	switch n := len(payload); {
	case n <= 125:
		buf = append(buf, byte(n))
	case n <= 0xffff:
		buf = append(buf, 126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(buf, payload...)
}
