package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the version of the signal entries gateways write: the
// first field of the packed entry (see Signal.Pack). ParseSignal also reads
// entries of version 1 (one stream field per signal field).
const SchemaVersion = "2"

// SignalField is the one stream field of a version 2 signal entry; its
// value is the packed signal.
const SignalField = "s"

// Kind is what a signal reports.
type Kind string

// Signal kinds.
const (
	KindConnect    Kind = "connect"    // a namespace was connected (the default one on the first transport)
	KindDisconnect Kind = "disconnect" // a namespace or the whole session ended; Reason says why
	KindMessage    Kind = "message"    // a type-3 packet; Data is the raw text
	KindJSON       Kind = "json"       // a type-4 packet; Data is JSON
	KindEvent      Kind = "event"      // a type-5 packet; Name, Args, and the client's ack request
	KindAck        Kind = "ack"        // a type-6 packet answering a server emit; ID, Args
	KindAuthorize  Kind = "authorize"  // a handshake asks to be authorized; Data is the handshake JSON, Reply the request
)

// DisconnectReason says why a session or a namespace of it ended: the
// reason of a KindDisconnect signal (Signal.Reason), the reason label of
// realtime_gateway_disconnects_total, and what the session scripts write
// (docs/redis.md). The values are the constants below; a signal written by
// another implementation may carry others, which readers pass on as they
// are.
type DisconnectReason string

// Disconnect reasons carried by KindDisconnect signals.
const (
	ReasonClient           DisconnectReason = "client"            // the client sent 0:: (or 0::/ns) or ?disconnect
	ReasonTransportClose   DisconnectReason = "transport_close"   // a websocket or htmlfile stream closed, or a client closed its poll before the answer
	ReasonTimeout          DisconnectReason = "timeout"           // a polling session had no contact for the close timeout
	ReasonHeartbeatTimeout DisconnectReason = "heartbeat_timeout" // a streaming client did not answer heartbeats
	ReasonGatewayLost      DisconnectReason = "gateway_lost"      // the gateway holding the stream died
	ReasonOverflow         DisconnectReason = "overflow"          // a mailbox or send queue overflowed
	ReasonServer           DisconnectReason = "server"            // the app disconnected the socket
	ReasonShutdown         DisconnectReason = "shutdown"          // the gateway holding the stream was drained
	ReasonDeliveryGap      DisconnectReason = "delivery_gap"      // its gateway could not prove it missed no route message (docs/redis.md)
	ReasonBadInput         DisconnectReason = "bad_input"         // a websocket client sent too many rejected packets in a row
)

// ErrBadSignal is returned by ParseSignal for an entry that does not follow
// the schema.
var ErrBadSignal = errors.New("bus: malformed signal entry")

// Signal is one stream entry, gateway -> worker.
type Signal struct {
	// ID is the stream entry id; set by ParseSignal, ignored by Pack.
	ID string

	Kind    Kind
	SID     string
	NS      string    // namespace, "" for the default one
	Gateway string    // node id of the gateway that received it
	Time    time.Time // when the gateway received it (millisecond precision)

	// Event and message fields.
	Name    string // event name
	Args    string // event or ack arguments: a JSON array ("" means none)
	Data    string // message text or JSON
	MsgID   uint64 // the packet id: the client's ack id for events/messages, the server's for acks
	HasID   bool
	AckData bool // the client asked for a data ack ("+")

	// Connect fields.
	Query     string // namespace connect query, e.g. "?token=x"
	Transport string // transport of the session

	// Disconnect field.
	Reason DisconnectReason

	// Authorize field: the request id, "<node> <id>", to answer with OpAuth.
	Reply string
}

// The packed form of a signal (schema version 2) is its fields in a fixed
// order, each as "<decimal byte length>:<bytes>": the version "2", kind,
// sid, ns, gw, ts (unix ms), id (the packet id, "" for none), ackdata ("1"
// or ""), name, args, data, query, transport, reason, reply. One stream
// field instead of fourteen makes XADD, XREADGROUP and the parsing cheaper.
const packedFields = 15

// Pack returns the signal's packed form, the value of SignalField.
func (s *Signal) Pack() string {
	var id, ts, ackData string
	if s.HasID {
		id = strconv.FormatUint(s.MsgID, 10)
		if s.AckData {
			ackData = "1"
		}
	}
	if !s.Time.IsZero() {
		ts = strconv.FormatInt(s.Time.UnixMilli(), 10)
	}
	fields := [packedFields]string{SchemaVersion, string(s.Kind), s.SID, s.NS, s.Gateway, ts, id, ackData,
		s.Name, s.Args, s.Data, s.Query, s.Transport, string(s.Reason), s.Reply}
	n := 0
	for _, f := range fields {
		n += len(f) + 8
	}
	var b strings.Builder
	b.Grow(n)
	var num [20]byte
	for _, f := range fields {
		b.Write(strconv.AppendInt(num[:0], int64(len(f)), 10))
		b.WriteByte(':')
		b.WriteString(f)
	}
	return b.String()
}

// Values returns the field list for XADD: SignalField and the packed signal.
func (s *Signal) Values() []any { return []any{SignalField, s.Pack()} }

// unpack splits a packed signal into its fields.
func unpack(p string) ([packedFields]string, error) {
	var f [packedFields]string
	for i := range f {
		colon := strings.IndexByte(p, ':')
		if colon <= 0 || colon > 10 {
			return f, fmt.Errorf("field %d: no length", i)
		}
		n, err := strconv.Atoi(p[:colon])
		if err != nil || n < 0 || n > len(p)-colon-1 {
			return f, fmt.Errorf("field %d: bad length %q", i, p[:colon])
		}
		f[i], p = p[colon+1:colon+1+n], p[colon+1+n:]
	}
	if p != "" {
		return f, fmt.Errorf("%d bytes after the last field", len(p))
	}
	return f, nil
}

// ParseSignal decodes a stream entry: version 2 (SignalField holds the
// packed signal) or version 1 (a stream field per signal field: v, kind,
// sid, ns, gw, ts, id, ackdata, name, args, data, query, transport, reason,
// reply).
func ParseSignal(id string, values map[string]any) (Signal, error) {
	var f [packedFields]string
	if packed, ok := values[SignalField].(string); ok {
		var err error
		if f, err = unpack(packed); err != nil {
			return Signal{}, fmt.Errorf("%w: %s: %v", ErrBadSignal, id, err)
		}
	} else {
		for i, k := range [packedFields]string{"v", "kind", "sid", "ns", "gw", "ts", "id", "ackdata",
			"name", "args", "data", "query", "transport", "reason", "reply"} {
			f[i], _ = values[k].(string)
		}
		if f[0] != "1" {
			return Signal{}, fmt.Errorf("%w: %s: schema version %q", ErrBadSignal, id, f[0])
		}
		f[0] = SchemaVersion
	}
	if f[0] != SchemaVersion {
		return Signal{}, fmt.Errorf("%w: %s: schema version %q", ErrBadSignal, id, f[0])
	}
	s := Signal{
		ID: id, Kind: Kind(f[1]), SID: f[2], NS: f[3], Gateway: f[4],
		Name: f[8], Args: f[9], Data: f[10], Query: f[11],
		Transport: f[12], Reason: DisconnectReason(f[13]), Reply: f[14],
	}
	if s.SID == "" {
		return Signal{}, fmt.Errorf("%w: %s: no sid", ErrBadSignal, id)
	}
	switch s.Kind {
	case KindConnect, KindDisconnect, KindMessage, KindJSON, KindEvent, KindAck, KindAuthorize:
	default:
		return Signal{}, fmt.Errorf("%w: %s: kind %q", ErrBadSignal, id, s.Kind)
	}
	if ts := f[5]; ts != "" {
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return Signal{}, fmt.Errorf("%w: %s: ts %q", ErrBadSignal, id, ts)
		}
		s.Time = time.UnixMilli(ms)
	}
	if idv := f[6]; idv != "" {
		n, err := strconv.ParseUint(idv, 10, 64)
		if err != nil {
			return Signal{}, fmt.Errorf("%w: %s: id %q", ErrBadSignal, id, idv)
		}
		s.MsgID, s.HasID = n, true
		s.AckData = f[7] == "1"
	}
	return s, nil
}
