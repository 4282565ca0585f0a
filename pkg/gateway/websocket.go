package gateway

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/gateway/internal/wsengine"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// A websocket held here costs, while idle: the socket, its wsengine.Conn
// (gorilla's Conn and a read buffer of Config.ReadBufferBytes) and the
// streamConn. No goroutine (the poller starts one to read when data comes),
// no write buffer (the writer goroutine exists while there is something to
// write), no timer (heartbeats and the heartbeat timeout come from the
// wheel), and no net/http state (the handler returns after the upgrade).

// serveWebSocket handles websocket and flashsocket (RFC 6455). After the
// upgrade it starts the connection's reads and returns, so net/http frees the
// request, its buffers and the handler's stack.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request, transport, sid string) {
	if !wsengine.IsUpgrade(r) {
		g.reject(w, r, http.StatusBadRequest, rejectNotWebSocket, "websocket upgrade expected")
		return
	}
	if g.overConnections() {
		g.reject(w, r, http.StatusServiceUnavailable, rejectOverConnections, "server over capacity")
		return
	}
	c, err := wsengine.Upgrade(w, r, wsengine.Options{
		ReadBufferBytes: g.cfg.ReadBufferBytes,
		MaxMessageBytes: g.cfg.MaxPacketBytes,
		WriteTimeout:    writeTimeout,
		CheckOrigin: func(r *http.Request) bool {
			return originAllowed(g.cfg.Origins, r.Header.Get("Origin"), r.Header.Get("Referer"))
		},
	})
	if err != nil {
		g.rejected(rejectWebSocketUpgrade, "err", err)
		return
	}
	// The request's context must not be used beyond the handler's upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s := g.newStreamConn(sid, transport, c, true)
	first, err := g.openConn(ctx, s)
	cancel()
	if err != nil {
		c.Refuse(g.openFailed(transport, sid, err))
		return
	}
	c.Start(s)
	g.holdConn(s, first)
}

// Frame implements wsengine.Handler: one data frame read. It reports
// whether reading goes on.
func (s *streamConn) Frame(text bool, data []byte) bool {
	s.lastRead.Store(time.Now().UnixNano())
	if !text {
		return s.badInput(rejectBinaryFrame, nil)
	}
	return s.received(data)
}

// badInput counts a rejected frame or packet (reason, counted and logged,
// rate-limited) and answers a rejected packet (data; nil for a frame that
// is no packet) as answerRejected says; it reports whether reading goes
// on: not beyond Config.MaxBadPackets in a row, when the connection is
// closed (after those answers) and its session ended with reason
// bad_input.
func (s *streamConn) badInput(reason rejectReason, data []byte) bool {
	g := s.g
	g.rejected(reason, "sid", session.LogSID(s.sid))
	if data != nil {
		for _, p := range answerRejected(reason, data) {
			s.send(p)
		}
	}
	if s.bad++; s.bad <= g.cfg.MaxBadPackets {
		return true
	}
	s.closeLocal(bus.ReasonBadInput)
	if ok, skipped := g.badLog.Allow(time.Now(), rejectLogEvery); ok {
		g.log.Warn("client disconnected: too many rejected packets in a row", "sid", session.LogSID(s.sid),
			"transport", s.transport, "limit", g.cfg.MaxBadPackets, "last_reason", reason.String(), "unlogged", skipped)
	}
	return false
}

// ControlDue implements wsengine.Handler: the conn has a pong to write,
// which the writer does (with the next batch, or alone).
func (s *streamConn) ControlDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.ctlDue = true
		s.kickLocked()
	}
}

// ReadsEnded implements wsengine.Handler: the websocket's reads ended (its
// client closed it or went away, a packet ended the session, the
// connection was closed here). A frame over the limit and a breach of the
// websocket protocol are counted as rejections. The connection stops with reason transport_close unless a
// reason was set already; the session's end is recorded once its writer
// closed the connection too (end).
func (s *streamConn) ReadsEnded(err error) {
	switch {
	case errors.Is(err, wsengine.ErrTooLarge):
		s.g.rejected(rejectPacketTooLarge, "sid", session.LogSID(s.sid), "limit", s.g.cfg.MaxPacketBytes)
	case errors.Is(err, wsengine.ErrProtocol):
		s.g.rejected(rejectWebSocketProtocol, "sid", session.LogSID(s.sid), "err", err)
	}
	s.closeLocal(bus.ReasonTransportClose)
	s.end()
}

// received handles one text frame; it reports whether reading goes on.
func (s *streamConn) received(data []byte) bool {
	g := s.g
	if fixed, repaired := g.repairIn(data, s.transport, s.sid); repaired {
		// The packet limit applies to what goes on (utf8.go).
		if len(fixed) > g.cfg.MaxPacketBytes {
			g.rejected(rejectPacketTooLarge, "sid", session.LogSID(s.sid), "limit", g.cfg.MaxPacketBytes, "repaired_bytes", len(fixed))
			s.closeLocal(bus.ReasonTransportClose)
			return false
		}
		data = fixed
	}
	if string(data) == "2::" {
		// A heartbeat answer: liveness only (lastRead moved).
		g.metrics.packetIn(int(protocol.Heartbeat), len(data))
		s.bad = 0
		return true
	}
	if s.rjoined == nil {
		s.rjoined = map[string]bool{"": true}
	}
	in := &inbound{sid: s.sid, transport: s.transport, joined: s.rjoined, reply: s.send}
	if reason := g.applyPacket(in, data); reason != notRejected {
		return s.badInput(reason, data)
	}
	s.bad = 0
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
	if ok, skipped := g.commitFailLog.Allow(time.Now(), commitFailLogEvery); ok {
		g.log.Warn("websocket sessions ended: a signal they sent was not committed to Redis; their clients reconnect",
			"err", err, "sessions_ended_not_logged", skipped)
	}
}

// commitFailLogEvery is the least time between two log lines about sessions
// ended because a commit failed.
const commitFailLogEvery = 5 * time.Second

// answerRejected returns what a client is told of a packet rejected for
// reason (raw as received), on any transport (a websocket at once, a POST
// through the mailbox), so that it neither sends on unaware nor waits
// forever for an ack:
//
//   - for too_many_namespaces, only 7::/ns:2 (unauthorized, as a refused
//     namespace: the 0.9 client emits connect_failed there);
//   - an error packet on the packet's endpoint ("" when it does not
//     decode): "7::" or "7::/ns", with no reason, as the reference's
//     encoder writes one (0.9's reasons are three indexes, none of which
//     means "bad packet"; "unauthorized" would make the client emit
//     connect_failed). The 0.9 client emits "error" on that namespace with
//     reason "". A rejected error packet (client_error_packet) is not
//     answered with another;
//   - if the packet decoded with an ack id, its ack: "6::/ns:<id>" for a
//     plain ack (the reference answers those for every packet, before
//     handling it), "6::/ns:<id>+[{"error":"<reason>"}]" for a data ack,
//     which the app would have answered: the client's callback gets one
//     argument, an object whose error is the reason's label.
func answerRejected(reason rejectReason, raw []byte) []string {
	if reason == rejectClientErrorPacket {
		return nil
	}
	p, err := protocol.Decode(raw)
	if err != nil {
		return []string{"7::"}
	}
	ns := p.Endpoint // even one validNamespace refuses: the client's own, without ':'
	if reason == rejectTooManyNamespaces {
		return []string{string(protocol.Encode(protocol.ErrorPacket(ns, protocol.ReasonUnauthorized, -1)))}
	}
	out := []string{string(protocol.Encode(protocol.Packet{Type: protocol.Error, Endpoint: ns}))}
	if !p.HasID {
		return out
	}
	data := strconv.AppendUint(nil, p.ID, 10)
	if p.AckData {
		data = append(data, `+[{"error":"`...)
		data = append(data, reason.String()...)
		data = append(data, `"}]`...)
	}
	return append(out, string(protocol.Encode(protocol.Packet{Type: protocol.Ack, Endpoint: ns, Data: data})))
}
