package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// writeTimeout bounds one write to a streaming client.
const writeTimeout = 10 * time.Second

// stream is a streaming connection (websocket, flashsocket, htmlfile) held by
// this gateway. Its writer goroutine owns every write; others hand it packets
// through a bounded queue.
type stream struct {
	g         *Gateway
	sid       string
	transport string
	out       chan string   // bounded; full => the client is too slow
	quit      chan struct{} // closed once: stop the writer
	finished  chan struct{} // closed when the session's end was recorded

	mu       sync.Mutex
	joined   map[string]bool // connected namespaces (reader updates, broadcasts read)
	stopOnce sync.Once
	reason   string // why it stopped (local decision); "" when ended elsewhere
	last     string // with an end decided elsewhere: the packet to write before closing
	remote   bool   // the session was ended elsewhere (do not end it again)
}

func (g *Gateway) newStream(sid, transport string) *stream {
	return &stream{
		g: g, sid: sid, transport: transport,
		out:      make(chan string, g.cfg.SendQueue),
		quit:     make(chan struct{}),
		finished: make(chan struct{}),
		joined:   map[string]bool{"": true},
	}
}

// send queues a packet; if the queue is full the client is disconnected
// with reason "overflow". It never blocks.
func (s *stream) send(packet string) {
	select {
	case s.out <- packet:
	case <-s.quit:
	default:
		s.g.metrics.QueueOverflows.Inc()
		s.g.log.Warn("slow client disconnected: send queue full", "sid", s.sid, "queue", cap(s.out))
		s.closeLocal(bus.ReasonOverflow)
	}
}

// closeLocal stops the stream for a reason decided here; the session is
// then ended with that reason.
func (s *stream) closeLocal(reason string) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.reason = reason
		s.mu.Unlock()
		close(s.quit)
	})
}

// closeRemote stops the stream because the session already ended elsewhere
// (route C); packet, if any, is written before closing.
func (s *stream) closeRemote(packet string) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.remote, s.last = true, packet
		s.mu.Unlock()
		close(s.quit)
	})
}

func (s *stream) inNamespace(ns string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined[ns]
}

func (s *stream) setNamespace(ns string, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool, len(s.joined)+1)
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

func (s *stream) setJoined(m map[string]bool) {
	s.mu.Lock()
	s.joined = m
	s.mu.Unlock()
}

// finish records the session's end (unless it ended elsewhere) after every
// signal the stream published, and forgets the stream.
func (s *stream) finish() {
	defer close(s.finished)
	s.g.streams.CompareAndDelete(s.sid, s)
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
	if err := s.g.pub.Publish(ctx, s.sid, s.g.store.EndWrite(s.sid, reason, "")); err != nil {
		s.g.metrics.RedisErrors.WithLabelValues("end").Inc()
		s.g.log.Warn("session end not recorded; the deadline reaper will end it", "sid", s.sid, "err", err)
		return
	}
	s.g.metrics.Disconnects.WithLabelValues(reason).Inc()
}

// open attaches the stream to its session and registers it. It returns the
// packets to write first (1:: and what waited in the mailbox).
func (g *Gateway) openStream(ctx context.Context, s *stream) ([]string, error) {
	if prev, loaded := g.streams.Swap(s.sid, s); loaded {
		prev.(*stream).closeRemote("")
	}
	_, queued, err := g.store.OpenStream(ctx, s.sid, s.transport)
	if err != nil {
		g.streams.CompareAndDelete(s.sid, s)
		return nil, err
	}
	return append([]string{"1::"}, queued...), nil
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
}

// serveWebSocket handles websocket and flashsocket (RFC 6455).
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request, transport, sid string) {
	if !websocket.IsWebSocketUpgrade(r) {
		g.reject(w, r, http.StatusBadRequest, "not_websocket", "websocket upgrade expected")
		return
	}
	if max := g.cfg.MaxConnections; max > 0 && g.held.Load() >= int64(max) {
		g.reject(w, r, http.StatusServiceUnavailable, "over_connections", "server over capacity")
		return
	}
	up := upgrader
	up.CheckOrigin = func(r *http.Request) bool {
		return originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer"))
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		g.rejected("websocket_upgrade", "err", err)
		return
	}
	defer conn.Close()
	// The request's context must not be used beyond the handler's upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s := g.newStream(sid, transport)
	first, err := g.openStream(ctx, s)
	cancel()
	if err != nil {
		reason := "open_failed"
		var pk string
		switch {
		case errors.Is(err, session.ErrUnknownSession):
			reason, pk = "unknown_sid", errorPacket
		case errors.Is(err, session.ErrWrongTransport):
			reason, pk = "wrong_transport", string(protocol.Encode(protocol.ErrorPacket("", protocol.ReasonTransportNotSupported, -1)))
		default:
			g.metrics.RedisErrors.WithLabelValues("open").Inc()
		}
		g.rejected(reason, "transport", transport, "sid", sid, "err", err)
		if pk != "" {
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			_ = conn.WriteMessage(websocket.TextMessage, []byte(pk))
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		return
	}
	g.metrics.Connections.WithLabelValues(transport).Inc()
	defer g.metrics.Connections.WithLabelValues(transport).Dec()
	g.held.Add(1)
	defer g.held.Add(-1)

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop(first, wsWriter{conn})
		_ = conn.Close() // unblocks the reader
	}()
	s.readLoop(conn)
	s.closeLocal(bus.ReasonTransportClose)
	<-writerDone
	s.finish()
}

// readLoop reads frames until the connection fails or the stream stops.
func (s *stream) readLoop(conn *websocket.Conn) {
	g := s.g
	conn.SetReadLimit(int64(g.cfg.MaxPacketBytes))
	joined := map[string]bool{"": true}
	var pending <-chan error // the last publish; signals are committed in order
	defer func() {
		if pending != nil {
			<-pending
		}
	}()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(g.cfg.HeartbeatTimeout))
		typ, data, err := conn.ReadMessage()
		if err != nil {
			var ne interface{ Timeout() bool }
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				s.closeLocal(bus.ReasonHeartbeatTimeout)
			case errors.Is(err, websocket.ErrReadLimit):
				g.rejected("packet_too_large", "sid", s.sid, "limit", g.cfg.MaxPacketBytes)
				s.closeLocal(bus.ReasonTransportClose)
			}
			return
		}
		if typ != websocket.TextMessage {
			g.rejected("binary_frame", "sid", s.sid)
			continue
		}
		in := &inbound{sid: s.sid, transport: s.transport, joined: joined, reply: s.send}
		if reason := g.handle(in, data); reason != "" {
			g.rejected(reason, "sid", s.sid)
			continue
		}
		if len(in.writes) > 0 {
			// Copy the namespace set so broadcasts see a consistent view.
			snapshot := make(map[string]bool, len(joined))
			for k := range joined {
				snapshot[k] = true
			}
			s.setJoined(snapshot)
			ch, err := g.pub.PublishAsync(context.Background(), s.sid, in.writes...)
			if err != nil {
				s.closeLocal(bus.ReasonShutdown)
				return
			}
			pending = ch
		}
		if in.ended {
			s.mu.Lock()
			s.remote = true // the publisher ends the session, in order
			s.mu.Unlock()
			g.metrics.Disconnects.WithLabelValues(bus.ReasonClient).Inc()
			return
		}
	}
}

// packetWriter writes packets to one kind of stream.
type packetWriter interface {
	write(packets []string) error
}

type wsWriter struct{ conn *websocket.Conn }

func (w wsWriter) write(packets []string) error {
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, p := range packets {
		if err := w.conn.WriteMessage(websocket.TextMessage, []byte(p)); err != nil {
			return err
		}
	}
	return nil
}

// writeLoop owns the stream's writes: first, then queued packets in
// batches, heartbeats every interval; it returns when the stream stops or a
// write fails.
func (s *stream) writeLoop(first []string, w packetWriter) {
	g := s.g
	if err := w.write(first); err != nil {
		s.closeLocal(bus.ReasonTransportClose)
		return
	}
	g.metrics.packetsOut(first)
	hb := time.NewTicker(g.cfg.HeartbeatInterval)
	defer hb.Stop()
	batch := make([]string, 0, 64)
	for {
		batch = batch[:0]
		select {
		case <-s.quit:
			s.mu.Lock()
			last := s.last
			s.mu.Unlock()
			// Flush what was queued before the end, then the last packet.
			for len(s.out) > 0 && len(batch) < cap(s.out) {
				batch = append(batch, <-s.out)
			}
			if last != "" {
				batch = append(batch, last)
			}
			if len(batch) > 0 {
				_ = w.write(batch)
			}
			return
		case <-hb.C:
			batch = append(batch, "2::")
		case p := <-s.out:
			batch = append(batch, p)
			for len(batch) < 64 {
				select {
				case p := <-s.out:
					batch = append(batch, p)
					continue
				default:
				}
				break
			}
		}
		if err := w.write(batch); err != nil {
			s.closeLocal(bus.ReasonTransportClose)
			return
		}
		g.metrics.packetsOut(batch)
	}
}
