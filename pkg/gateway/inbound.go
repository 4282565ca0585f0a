package gateway

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
)

// maxNamespaceBytes bounds a namespace name.
const maxNamespaceBytes = 256

// inbound collects what one batch of client packets (a POST body, or one
// websocket frame) does to a session: the ordered Redis writes, and for a
// streaming connection held here, the packets this gateway answers at once.
type inbound struct {
	sid       string
	transport string
	joined    map[string]bool // connected namespaces; updated as packets join and leave
	changed   bool            // joined was updated
	// reply writes a packet to the client at once; nil for polling sessions,
	// whose immediate answers go through their mailbox.
	reply  func(packet string)
	writes []bus.Write
	ended  bool // the client sent 0::; later packets are ignored
}

// applyPacket turns one client packet into writes and immediate answers. It
// returns a rejection reason (notRejected when the packet was accepted); a rejected
// packet is counted and logged by the caller and changes nothing.
func (g *Gateway) applyPacket(in *inbound, raw []byte) rejectReason {
	if in.ended {
		return notRejected
	}
	p, err := protocol.Decode(raw)
	if err != nil {
		return rejectMalformedPacket
	}
	g.metrics.packetIn(int(p.Type), len(raw))
	ns := p.Endpoint
	if ns != "" && !validNamespace(ns) {
		return rejectBadNamespace
	}
	now := time.Now()
	signal := func(s bus.Signal) {
		s.SID, s.NS, s.Gateway, s.Time = in.sid, ns, g.cfg.Node, now
		in.writes = append(in.writes, bus.XAdd(g.cfg.Keys, &s))
	}
	switch p.Type {
	case protocol.Disconnect:
		if ns == "" {
			in.ended = true
			in.writes = append(in.writes, g.store.EndWrite(in.sid, bus.ReasonClient, ""))
			return notRejected
		}
		if in.joined[ns] {
			delete(in.joined, ns)
			in.changed = true
			in.writes = append(in.writes, g.store.LeaveWrite(in.sid, ns, bus.ReasonClient))
		}
	case protocol.Connect:
		if ns == "" {
			return notRejected // the default namespace is connected with the transport
		}
		if !in.joined[ns] && in.namespaces() >= g.cfg.MaxNamespaces {
			return rejectTooManyNamespaces
		}
		in.changed = in.changed || !in.joined[ns]
		in.joined[ns] = true
		in.writes = append(in.writes, g.store.JoinWrite(in.sid, ns, string(p.Data), in.reply == nil))
		if in.reply != nil {
			in.reply("1::" + ns)
		}
	case protocol.Heartbeat, protocol.Noop:
	case protocol.Error:
		return rejectClientErrorPacket
	case protocol.Message, protocol.JSON, protocol.Event:
		if !in.joined[ns] {
			return rejectNamespaceNotConnected
		}
		s := bus.Signal{MsgID: p.ID, HasID: p.HasID, AckData: p.AckData}
		switch p.Type {
		case protocol.Message:
			s.Kind, s.Data = bus.KindMessage, string(p.Data)
		case protocol.JSON:
			if !json.Valid(p.Data) {
				return rejectBadJSON
			}
			s.Kind, s.Data = bus.KindJSON, string(p.Data)
		case protocol.Event:
			name, args, err := protocol.ParseEvent(p.Data)
			if err != nil {
				return rejectBadEvent
			}
			s.Kind, s.Name = bus.KindEvent, name
			if string(args) != "[]" {
				s.Args = string(args) // absent when empty (docs/redis.md)
			}
		}
		if p.HasID && !p.AckData {
			// A plain ack id is answered by the server transport at once,
			// before the app sees the packet (as the reference does).
			ack := string(protocol.Encode(protocol.Packet{Type: protocol.Ack, Endpoint: ns,
				Data: []byte(strconv.FormatUint(p.ID, 10))}))
			if in.reply != nil {
				in.reply(ack)
			} else {
				in.writes = append(in.writes, g.store.DeliverWrite(in.sid, ack))
			}
		}
		if s.Kind == bus.KindEvent && s.Name == "disconnect" {
			return notRejected // the reference's blacklist: ignored (its plain ack answered above, as the reference does)
		}
		signal(s)
	case protocol.Ack:
		if !in.joined[ns] {
			return rejectNamespaceNotConnected
		}
		id, args, _, err := protocol.ParseAck(p.Data)
		if err != nil {
			return rejectBadAck
		}
		ack := bus.Signal{Kind: bus.KindAck, SID: in.sid, NS: ns, Gateway: g.cfg.Node, Time: now,
			MsgID: id, HasID: true, Args: string(args)}
		in.writes = append(in.writes, g.store.AckWrite(&ack))
	default:
		return rejectUnknownPacketType
	}
	return notRejected
}

// namespaces counts the connected namespaces besides the default one.
func (in *inbound) namespaces() int {
	n := len(in.joined)
	if in.joined[""] {
		n--
	}
	return n
}

// validNamespace accepts "/" followed by printable UTF-8 without ':' (the
// decoder already excludes it), at most maxNamespaceBytes.
func validNamespace(ns string) bool {
	if len(ns) > maxNamespaceBytes || ns[0] != '/' || !utf8.ValidString(ns) {
		return false
	}
	for i := 0; i < len(ns); i++ {
		if c := ns[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
