package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// writeTimeout bounds one write to a websocket client that has to wait for
// the socket.
const writeTimeout = 10 * time.Second

// conn is the socket end of a streamConn: *wsengine.Conn for websocket and
// flashsocket, htmlfileConn for htmlfile, a fake in the unit tests. One
// goroutine at a time calls its methods: the owner of the connection's
// writes (see streamConn). After a failed write, every later write fails
// at once with that error and writes nothing.
type conn interface {
	// TryWrite writes packets, each as one message, in order, without
	// blocking, as far as the socket takes them; anything of the
	// connection's own that is due goes first (a websocket's pong). It
	// reports whether all was written; if not, it keeps the rest and the
	// next call is Flush.
	TryWrite(packets []string) (bool, error)
	// Flush writes what TryWrite kept, blocking (a websocket: at most
	// writeTimeout).
	Flush() error
	// Write writes packets as TryWrite does, but all of them, blocking (a
	// websocket: at most writeTimeout per write). Packets may be empty: it
	// then writes only what of the connection's own is due.
	Write(packets []string) error
	// Close ends the connection after its last Write: what the protocol
	// writes at the end (a websocket's answer to its client's close frame),
	// then the socket closed, which ends its reads.
	Close() error
}

// streamConn is a streaming connection (websocket, flashsocket, htmlfile)
// held by this gateway: the session's side of it. The socket's side is its
// conn (see conn; websocket.go and package wsengine, htmlfile.go).
// ("Stream" alone means a Redis stream in package bus and a session class
// in package session.)
//
// Writes. One goroutine at a time owns the connection's writes (writing);
// others hand it packets through a queue: a slice under mu, nil while
// empty, bounded by Config.SendQueue packets and by Config.SendQueueBytes
// bytes queued or taken and not yet written (beyond either the slow client
// is disconnected with reason "overflow"). The packet that finds the queue
// empty and no writer running starts the write: it calls TryWrite at once,
// from the goroutine that queued it (a websocket's socket buffer nearly
// always takes a packet whole, without blocking), and only what the
// conn kept goes to a writer goroutine (Flush). The writer drains the
// queue, hands each batch to Write, and exits when the queue is empty, so
// an idle connection has no writer goroutine. Heartbeats come from the
// gateway's heartbeat wheel through the same queue; a websocket's answers to
// pings go through the writer too (ControlDue).
//
// Reads. A websocket's conn hands the frames it reads to Frame and says
// when its reads end (ReadsEnded): package wsengine's Handler. No
// goroutine waits on an idle websocket; the heartbeat wheel ends a
// connection silent for the heartbeat timeout (heartbeat.go; for htmlfile,
// whose client POSTs to any gateway, after asking Redis when it was last
// heard).
//
// Stopping. closeLocal or closeRemote marks the connection stopped and
// starts a writer, which writes what was queued and the last packet if
// any, and closes the conn (which ends a websocket's reads). The session's
// end is recorded once (finish), after both the writer's close and, for a
// websocket, the end of its reads (end).
//
// Locks: a connection's mu is never held together with the heartbeat
// wheel's mutex, nor while calling its conn.
type streamConn struct {
	g         *Gateway
	sid       string
	part      int // the session's partition (bus.Keys.PartitionOf)
	transport string
	c         conn
	finished  chan struct{} // closed when the session's end was recorded
	ends      atomic.Int32  // parts of the end still to come (end)

	// Websocket: owned by the reader (one goroutine at a time, see
	// websocket.go).
	rjoined  map[string]bool // connected namespaces, as the reader updates them; nil: only ""
	pending  <-chan error    // the last commit; signals are committed in order
	lastRead atomic.Int64    // unix ns of the last sign of life known here (heartbeat.go)
	bad      int             // rejected frames and packets in a row (Config.MaxBadPackets)

	mu      sync.Mutex
	queue   []string             // packets to write, in order; nil when empty
	qbytes  int                  // bytes of the packets in queue
	fbytes  int                  // bytes of the packets taken from queue and not yet written
	routed  routedTimes          // when the oldest routed packets in queue were routed
	writing bool                 // a goroutine owns the writes, or none may yet (before start, after the end)
	ctlDue  bool                 // the conn has something of its own to write (ControlDue)
	joined  map[string]bool      // connected namespaces (reader updates, broadcasts read); nil: only ""
	stopped bool                 // the connection is ending: write what is queued, then last, then close
	reason  bus.DisconnectReason // why it stopped (local decision); "" when ended elsewhere
	last    string               // with an end decided elsewhere: the packet to write before closing
	remote  bool                 // the session was ended elsewhere (do not end it again)

	// The heartbeat wheel's links (wheelLinks, heartbeat.go), guarded by
	// its mutex.
	hbPrev, hbNext *streamConn
	hbSlot         int
	hbLinked       bool

	// The heartbeat timeout (heartbeat.go). lastRead above is the open, the
	// last frame read (websocket), or for htmlfile the last POST to this
	// gateway or recorded in Redis by another (moved only forward, by heard).
	hbCheck atomic.Bool // a silence check is scheduled or running
}

// newStreamConn returns a connection on c that queues packets but writes
// none until start. reads: c reports the end of its reads (a websocket),
// which the session's end then waits for.
func (g *Gateway) newStreamConn(sid, transport string, c conn, reads bool) *streamConn {
	s := &streamConn{
		g: g, sid: sid, part: g.cfg.Keys.PartitionOf(sid), transport: transport, c: c,
		finished: make(chan struct{}),
		writing:  true, // held until start
	}
	s.ends.Store(1)
	if reads {
		s.ends.Store(2)
	}
	return s
}

// holdConn starts a connection opened on its session: it is counted as held,
// heard from now, writes first (1:: and what waited in the mailbox) ahead of
// anything queued meanwhile, and gets heartbeats.
func (g *Gateway) holdConn(s *streamConn, first []string) {
	g.metrics.Connections.WithLabelValues(s.transport).Inc()
	g.held.Add(1)
	s.heard(time.Now()) // the open is the first sign of life
	s.start(first)
	g.heartbeats.add(s, g.cfg.HeartbeatInterval)
}

// start puts first ahead of anything queued meanwhile and lets the writer
// run.
func (s *streamConn) start(first []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(first, s.queue...)
	for _, p := range first {
		s.qbytes += len(p)
	}
	s.writing = false
	if len(s.queue) > 0 || s.ctlDue || s.stopped {
		s.kickLocked()
	}
}

// routedTimes holds, per connection route (direct, broadcast), the unix ms at
// which the oldest packet of that route waiting in a queue was routed by
// Redis (0: none waits); the delivery latency is observed for it once the
// batch is written.
type routedTimes [routeMailbox]int64

// Routes of routed packets: to a connection held here (direct, broadcast) or
// through a polling session's mailbox.
const (
	routeDirect = iota
	routeBroadcast
	routeMailbox
)

var routeNames = [...]string{"direct", "broadcast", "mailbox"}

// observe records the delivery latency of a written batch's oldest packet
// of each route.
func (r routedTimes) observe(g *Gateway) {
	for route, ms := range r {
		if ms > 0 {
			g.observeDelivery(route, ms)
		}
	}
}

// send queues a packet; if the queue is full the client is disconnected
// with reason "overflow". It never blocks.
func (s *streamConn) send(packet string) { s.sendRouted(packet, routeDirect, 0) }

// sendRouted queues a packet Redis routed at unix ms routedMs (0: not
// routed) on route (routeDirect or routeBroadcast), as send does.
func (s *streamConn) sendRouted(packet string, route int, routedMs int64) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	held := s.qbytes + s.fbytes
	overBytes := held > 0 && held+len(packet) > s.g.cfg.SendQueueBytes
	if len(s.queue) >= s.g.cfg.SendQueue || overBytes {
		first := s.stopLocked(bus.ReasonOverflow, false, "")
		n := len(s.queue)
		s.mu.Unlock()
		if first {
			s.g.metrics.QueueOverflows.Inc()
			if overBytes {
				s.g.metrics.QueueByteOverflows.Inc()
			}
			s.g.log.Warn("slow client disconnected: send queue full", "sid", session.LogSID(s.sid),
				"packets", n, "bytes", held, "packet_bytes", len(packet),
				"limit_packets", s.g.cfg.SendQueue, "limit_bytes", s.g.cfg.SendQueueBytes)
		}
		return
	}
	s.queue = append(s.queue, packet)
	s.qbytes += len(packet)
	if routedMs > 0 && s.routed[route] == 0 {
		s.routed[route] = routedMs
	}
	if len(s.queue) == 1 && !s.writing {
		// This goroutine owns the writes until it hands them on.
		s.writing = true
		b, _ := s.takeLocked()
		s.mu.Unlock()
		s.writeInline(b)
		return
	}
	s.mu.Unlock()
}

// kickLocked starts a writer unless a goroutine owns the writes.
func (s *streamConn) kickLocked() {
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
}

// writeInline writes a batch the caller took (owning the writes) without
// blocking; what the conn kept, and anything queued meanwhile, goes to a
// writer goroutine.
func (s *streamConn) writeInline(b batch) {
	s.repairOut(b)
	done, err := s.c.TryWrite(b.packets)
	switch {
	case err != nil:
		s.closeLocal(bus.ReasonTransportClose)
		go s.writeLoop()
	case !done:
		go func() {
			if err := s.c.Flush(); err != nil {
				s.closeLocal(bus.ReasonTransportClose)
			} else {
				s.wrote(b)
			}
			s.writeLoop()
		}()
	default:
		s.wrote(b)
		s.mu.Lock()
		more := len(s.queue) > 0 || s.ctlDue || s.stopped
		if !more {
			s.writing = false
		}
		s.mu.Unlock()
		if more {
			go s.writeLoop()
		}
	}
}

// writeLoop is a writer: it writes batches until the queue is empty (then
// exits) or the connection ends (then it closes the conn, and the session's
// end follows).
func (s *streamConn) writeLoop() {
	for {
		b, ok := s.take()
		if !ok {
			return
		}
		if len(b.packets) > 0 || b.ctl {
			s.repairOut(b)
			if err := s.c.Write(b.packets); err != nil {
				s.closeLocal(bus.ReasonTransportClose)
			} else {
				s.wrote(b)
			}
		}
		if b.final {
			_ = s.c.Close()
			s.end()
			return // writing stays true: no writer starts again
		}
	}
}

// repairOut repairs invalid UTF-8 in a batch's packets before they are
// written (utf8.go).
func (s *streamConn) repairOut(b batch) { s.g.repairOut(b.packets, s.transport, s.sid) }

// wrote counts a written batch; its bytes no longer count against
// Config.SendQueueBytes.
func (s *streamConn) wrote(b batch) {
	s.mu.Lock()
	s.fbytes -= b.bytes
	s.mu.Unlock()
	s.g.metrics.packetsOut(b.packets)
	b.routed.observe(s.g)
}

// stopLocked marks the connection stopped; it reports whether this call did.
func (s *streamConn) stopLocked(reason bus.DisconnectReason, remote bool, last string) bool {
	if s.stopped {
		return false
	}
	s.stopped = true
	if remote {
		s.remote, s.last = true, last
	} else {
		s.reason = reason
	}
	s.kickLocked()
	return true
}

// closeLocal stops the connection for a reason decided here; the session is
// then ended with that reason.
func (s *streamConn) closeLocal(reason bus.DisconnectReason) {
	s.mu.Lock()
	s.stopLocked(reason, false, "")
	s.mu.Unlock()
}

// closeRemote stops the connection because the session already ended elsewhere
// (route C); packet, if any, is written before closing.
func (s *streamConn) closeRemote(packet string) {
	s.mu.Lock()
	s.stopLocked("", true, packet)
	s.mu.Unlock()
}

func (s *streamConn) inNamespace(ns string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.joined == nil {
		return ns == ""
	}
	return s.joined[ns]
}

func (s *streamConn) setNamespace(ns string, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool, len(s.joined)+2)
	m[""] = true
	for k := range s.joined {
		m[k] = true
	}
	if in {
		m[ns] = true
	} else {
		delete(m, ns)
	}
	s.joined = m
}

func (s *streamConn) setJoined(m map[string]bool) {
	s.mu.Lock()
	s.joined = m
	s.mu.Unlock()
}

// batch is what the owner of a connection's writes takes from it at once.
type batch struct {
	packets []string // in order; when final, ends with the last packet if any
	routed  routedTimes
	bytes   int  // the packets' bytes (the last packet not included)
	ctl     bool // the conn has something of its own to write
	final   bool // the connection stopped: after writing, close it
}

// take removes what waits to be written; ok is false when nothing does,
// and then the writer must exit (the next packet starts another).
func (s *streamConn) take() (b batch, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked()
}

// takeLocked is take with s.mu held.
func (s *streamConn) takeLocked() (b batch, ok bool) {
	if len(s.queue) == 0 && !s.ctlDue && !s.stopped {
		s.writing = false
		return b, false
	}
	b.packets, s.queue = s.queue, nil
	b.bytes, s.fbytes, s.qbytes = s.qbytes, s.fbytes+s.qbytes, 0
	b.routed, s.routed = s.routed, routedTimes{}
	b.ctl, s.ctlDue = s.ctlDue, false
	if s.stopped {
		b.final = true
		if s.last != "" {
			b.packets = append(b.packets, s.last)
		}
	}
	return b, true
}

// end is called once by each part of the connection's end: its writer,
// after closing the conn, and for a websocket its reads (ReadsEnded). The
// last records the session's end.
func (s *streamConn) end() {
	if s.ends.Add(-1) == 0 {
		s.finish()
	}
}

// finish records the session's end (unless it ended elsewhere) after every
// signal the connection committed, and forgets the connection.
func (s *streamConn) finish() {
	g := s.g
	defer close(s.finished)
	if s.pending != nil {
		<-s.pending // the reads ended before this (end): pending is settled
	}
	g.heartbeats.remove(s)
	g.conns.CompareAndDelete(s.sid, s)
	g.rooms[s.part].forget(s.sid)
	defer func() {
		g.held.Add(-1)
		g.metrics.Connections.WithLabelValues(s.transport).Dec()
	}()
	s.mu.Lock()
	remote, reason := s.remote, s.reason
	s.mu.Unlock()
	if remote {
		return
	}
	if reason == "" {
		reason = bus.ReasonTransportClose
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.committer.Commit(ctx, s.sid, g.store.EndWrite(s.sid, reason, "")); err != nil {
		g.metrics.RedisErrors.WithLabelValues("end").Inc()
		g.log.Warn("session end not recorded; the deadline reaper will end it", "sid", session.LogSID(s.sid), "err", err)
		return
	}
	g.metrics.disconnected(reason, 1)
}

// openConn attaches the connection to its session (session.Store.OpenStream:
// the session's class becomes "stream") and registers it. It returns the
// packets to write first (1:: and what waited in the mailbox).
//
// A session a streaming connection holds already here is refused
// (session.ErrSessionHeld), and the connection that holds it goes on: a
// live websocket is never taken over by another connection on its sid
// through the same gateway. One held by another gateway is taken over
// (that gateway ends its stream with reason "replaced"): a gateway that
// died between opening a stream and writing its first bytes leaves the
// session marked held, and the balancer's retry of the request on another
// gateway must open it (issue 14; README "Gateway kill"). Telling that
// retry from a second client with a leaked sid needs something only the
// first client has (an HttpOnly cookie bound at the handshake; not built
// yet, issue 16).
func (g *Gateway) openConn(ctx context.Context, s *streamConn) ([]string, error) {
	if _, loaded := g.conns.LoadOrStore(s.sid, s); loaded {
		return nil, session.ErrSessionHeld
	}
	_, queued, err := g.store.OpenStream(ctx, s.sid, s.transport)
	if err != nil {
		g.conns.CompareAndDelete(s.sid, s)
		return nil, err
	}
	return append([]string{"1::"}, queued...), nil
}
