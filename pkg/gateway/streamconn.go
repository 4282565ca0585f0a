package gateway

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
)

// writeTimeout bounds one write to a streaming client.
const writeTimeout = 10 * time.Second

// streamConn is a streaming connection (websocket, flashsocket, htmlfile)
// held by this gateway. ("Stream" alone means a Redis stream in package bus
// and a session class in package session.)
//
// Writes. One goroutine at a time owns the connection's writes; others hand
// it packets through a queue: a slice under mu, nil while empty, bounded by
// Config.SendQueue (beyond it the slow client is disconnected with reason
// "overflow"). For a websocket, the packet that finds the queue empty starts
// the write: it writes at once, without blocking, from the goroutine that
// queued it (the socket's buffer nearly always takes a packet whole), and
// only what the socket did not take goes to a writer goroutine (writing
// guards against a second one). The writer drains the queue, writes each
// batch with one syscall (every packet its own text frame), and exits when
// the queue is empty, so an idle websocket has no writer goroutine and no
// write buffer. An htmlfile connection's writer is its HTTP handler, woken
// through wake. Heartbeats come from the gateway's
// heartbeat wheel through the same queue.
//
// Reads. No goroutine waits on an idle websocket: the socket is registered
// with the poller (poller_linux.go), which starts a goroutine to read when
// data comes; the heartbeat wheel ends a connection silent for the heartbeat
// timeout (heartbeat.go; for htmlfile, whose client POSTs to any gateway,
// after asking Redis when it was last heard). Answers to pings and the
// close handshake go through the writer too.
//
// Stopping. closeLocal or closeRemote marks the connection stopped and
// wakes the writer, which writes what was queued, the last packet if any, the answer
// to the client's close frame if it sent one, and closes the connection
// (which ends a reader); then the session's end is recorded once (finish).
//
// Locks: a connection's mu is never held together with the heartbeat
// wheel's or the poller's mutex.
type streamConn struct {
	g         *Gateway
	sid       string
	transport string
	finished  chan struct{} // closed when the session's end was recorded

	// Set before the connection is shared, then read-only.
	nc      net.Conn      // websocket: where the writer writes frames
	written chan struct{} // websocket: closed once the writer closed nc
	wake    chan struct{} // htmlfile: wakes the handler, which writes (nil for websockets)

	// Websocket: owned by the reader (one goroutine at a time, see
	// websocket.go).
	ws       *websocket.Conn
	br       *bufio.Reader   // the reader gorilla reads frames from
	rc       syscall.RawConn // the socket, registered with the poller (nil: not)
	fd       int             // the socket's descriptor, as registered; -1: not
	rjoined  map[string]bool // connected namespaces, as the reader updates them; nil: only ""
	pending  <-chan error    // the last commit; signals are committed in order
	lastRead atomic.Int64    // unix ns of the last sign of life known here (heartbeat.go)

	mu        sync.Mutex
	queue     []string             // packets to write, in order; nil when empty
	routed    routedTimes          // when the oldest routed packets in queue were routed
	writing   bool                 // websocket: a writer goroutine runs, or none may start yet (before start, after the end)
	stopped   bool                 // the connection is ending: write what is queued, then last, then close
	pong      string               // websocket: payload of the last ping, to answer
	pongDue   bool                 // websocket: a pong is to be written
	peerClose int                  // websocket: the close code the client sent (0: it sent none)
	parked    bool                 // websocket: no goroutine reads; the poller wakes one when data comes
	joined    map[string]bool      // connected namespaces (reader updates, broadcasts read); nil: only ""
	reason    bus.DisconnectReason // why it stopped (local decision); "" when ended elsewhere
	last      string               // with an end decided elsewhere: the packet to write before closing
	remote    bool                 // the session was ended elsewhere (do not end it again)

	// Guarded by the heartbeat wheel's mutex.
	hbPrev, hbNext *streamConn
	hbSlot         int
	hbLinked       bool

	// The heartbeat timeout (heartbeat.go). lastRead above is the open, the
	// last frame read (websocket), or for htmlfile the last POST to this
	// gateway or recorded in Redis by another (moved only forward, by heard).
	hbCheck atomic.Bool // a silence check is scheduled or running
}

// newStreamConn returns a connection that queues packets but writes none
// until start. nc is the websocket's network connection; nil makes an
// htmlfile connection, whose handler writes when woken.
func (g *Gateway) newStreamConn(sid, transport string, nc net.Conn) *streamConn {
	s := &streamConn{
		g: g, sid: sid, transport: transport, nc: nc, fd: -1,
		finished: make(chan struct{}),
		writing:  true, // held until start
	}
	if nc != nil {
		s.written = make(chan struct{})
	} else {
		s.wake = make(chan struct{}, 1)
		s.writing = false
	}
	return s
}

// start puts first (1:: and what waited in the mailbox) ahead of anything
// queued meanwhile and lets the writer run.
func (s *streamConn) start(first []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(first, s.queue...)
	if s.wake == nil {
		s.writing = false
	}
	if len(s.queue) > 0 || s.stopped {
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
	if len(s.queue) >= s.g.cfg.SendQueue {
		first := s.stopLocked(bus.ReasonOverflow, false, "")
		s.mu.Unlock()
		if first {
			s.g.metrics.QueueOverflows.Inc()
			s.g.log.Warn("slow client disconnected: send queue full", "sid", s.sid, "queue", s.g.cfg.SendQueue)
		}
		return
	}
	s.queue = append(s.queue, packet)
	if routedMs > 0 && s.routed[route] == 0 {
		s.routed[route] = routedMs
	}
	if len(s.queue) == 1 && s.canWriteInlineLocked() {
		s.writing = true
		b, _ := s.takeLocked()
		s.mu.Unlock()
		s.writeInline(b)
		return
	}
	if len(s.queue) == 1 {
		s.kickLocked()
	}
	s.mu.Unlock()
}

// kickLocked makes the owner of the writes look at the queue: it wakes an
// htmlfile handler, or starts a websocket writer unless one runs.
func (s *streamConn) kickLocked() {
	if s.wake != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return
	}
	if !s.writing {
		s.writing = true
		go s.writeLoop(false)
	}
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
	packets    []string // in order; when final, ends with the last packet if any
	pong       string
	pongDue    bool
	routed     routedTimes
	final      bool // the connection stopped: after writing, close it
	closeFrame bool // with final: answer the client's close frame
	closeCode  int  // the close frame's code (0: a close frame without a code)
}

// take removes what waits to be written; ok is false when nothing does,
// and then a websocket's writer must exit (the next packet starts another).
func (s *streamConn) take() (b batch, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked()
}

// takeLocked is take with s.mu held.
func (s *streamConn) takeLocked() (b batch, ok bool) {
	if len(s.queue) == 0 && !s.pongDue && !s.stopped {
		if s.wake == nil {
			s.writing = false
		}
		return b, false
	}
	b.packets, s.queue = s.queue, nil
	b.routed, s.routed = s.routed, routedTimes{}
	b.pong, b.pongDue = s.pong, s.pongDue
	s.pong, s.pongDue = "", false
	if s.stopped {
		b.final = true
		if s.last != "" {
			b.packets = append(b.packets, s.last)
		}
		// Echo a client's close frame (code only), as gorilla's default close
		// handler does. A connection ended here is closed without
		// one, as it always did: the 0.9 client under Node.js (ws 0.4)
		// throws when it emits while its socket is closing.
		switch {
		case s.peerClose == websocket.CloseNoStatusReceived:
			b.closeFrame = true
		case s.peerClose != 0:
			b.closeFrame, b.closeCode = true, s.peerClose
		}
	}
	return b, true
}

// finish records the session's end (unless it ended elsewhere) after every
// signal the connection committed, and forgets the connection.
func (s *streamConn) finish() {
	defer close(s.finished)
	s.g.heartbeats.remove(s)
	s.g.conns.CompareAndDelete(s.sid, s)
	s.g.rooms.forget(s.sid)
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
	if err := s.g.committer.Commit(ctx, s.sid, s.g.store.EndWrite(s.sid, reason, "")); err != nil {
		s.g.metrics.RedisErrors.WithLabelValues("end").Inc()
		s.g.log.Warn("session end not recorded; the deadline reaper will end it", "sid", s.sid, "err", err)
		return
	}
	s.g.metrics.disconnected(reason, 1)
}

// openConn attaches the connection to its session (session.Store.OpenStream:
// the session's class becomes "stream") and registers it. It returns the
// packets to write first (1:: and what waited in the mailbox).
func (g *Gateway) openConn(ctx context.Context, s *streamConn) ([]string, error) {
	if prev, loaded := g.conns.Swap(s.sid, s); loaded {
		prev.(*streamConn).closeRemote("")
	}
	_, queued, err := g.store.OpenStream(ctx, s.sid, s.transport)
	if err != nil {
		g.conns.CompareAndDelete(s.sid, s)
		return nil, err
	}
	return append([]string{"1::"}, queued...), nil
}
