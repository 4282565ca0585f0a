package bus

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// SchemaVersion is the value of the "v" field of every signal entry.
const SchemaVersion = "1"

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

// Disconnect reasons carried by KindDisconnect signals.
const (
	ReasonClient           = "client"            // the client sent 0:: (or 0::/ns) or ?disconnect
	ReasonTransportClose   = "transport_close"   // a websocket or htmlfile stream closed
	ReasonTimeout          = "timeout"           // a polling session had no contact for the close timeout
	ReasonHeartbeatTimeout = "heartbeat_timeout" // a streaming client did not answer heartbeats
	ReasonGatewayLost      = "gateway_lost"      // the gateway holding the stream died
	ReasonOverflow         = "overflow"          // a mailbox or send queue overflowed
	ReasonServer           = "server"            // the app disconnected the socket
	ReasonShutdown         = "shutdown"          // the gateway holding the stream was drained
)

// ErrBadSignal is returned by ParseSignal for an entry that does not follow
// the schema.
var ErrBadSignal = errors.New("bus: malformed signal entry")

// Signal is one stream entry, gateway -> worker.
type Signal struct {
	// ID is the stream entry id; set by ParseSignal, ignored by Values.
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
	Reason string

	// Authorize field: the request id, "<node> <id>", to answer with OpAuth.
	Reply string
}

// Values returns the flat field list for XADD.
func (s *Signal) Values() []any {
	v := make([]any, 0, 24)
	v = append(v, "v", SchemaVersion, "kind", string(s.Kind), "sid", s.SID, "ns", s.NS,
		"gw", s.Gateway, "ts", strconv.FormatInt(s.Time.UnixMilli(), 10))
	if s.HasID {
		v = append(v, "id", strconv.FormatUint(s.MsgID, 10))
		if s.AckData {
			v = append(v, "ackdata", "1")
		}
	}
	if s.Name != "" {
		v = append(v, "name", s.Name)
	}
	if s.Args != "" {
		v = append(v, "args", s.Args)
	}
	if s.Data != "" || s.Kind == KindMessage || s.Kind == KindJSON {
		v = append(v, "data", s.Data)
	}
	if s.Query != "" {
		v = append(v, "query", s.Query)
	}
	if s.Transport != "" {
		v = append(v, "transport", s.Transport)
	}
	if s.Reason != "" {
		v = append(v, "reason", s.Reason)
	}
	if s.Reply != "" {
		v = append(v, "reply", s.Reply)
	}
	return v
}

// ParseSignal decodes a stream entry.
func ParseSignal(id string, values map[string]any) (Signal, error) {
	str := func(k string) string {
		s, _ := values[k].(string)
		return s
	}
	if v := str("v"); v != SchemaVersion {
		return Signal{}, fmt.Errorf("%w: %s: schema version %q", ErrBadSignal, id, v)
	}
	s := Signal{
		ID: id, Kind: Kind(str("kind")), SID: str("sid"), NS: str("ns"), Gateway: str("gw"),
		Name: str("name"), Args: str("args"), Data: str("data"), Query: str("query"),
		Transport: str("transport"), Reason: str("reason"), Reply: str("reply"),
	}
	if s.SID == "" {
		return Signal{}, fmt.Errorf("%w: %s: no sid", ErrBadSignal, id)
	}
	switch s.Kind {
	case KindConnect, KindDisconnect, KindMessage, KindJSON, KindEvent, KindAck, KindAuthorize:
	default:
		return Signal{}, fmt.Errorf("%w: %s: kind %q", ErrBadSignal, id, s.Kind)
	}
	if ts := str("ts"); ts != "" {
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return Signal{}, fmt.Errorf("%w: %s: ts %q", ErrBadSignal, id, ts)
		}
		s.Time = time.UnixMilli(ms)
	}
	if idv := str("id"); idv != "" {
		n, err := strconv.ParseUint(idv, 10, 64)
		if err != nil {
			return Signal{}, fmt.Errorf("%w: %s: id %q", ErrBadSignal, id, idv)
		}
		s.MsgID, s.HasID = n, true
		s.AckData = str("ackdata") == "1"
	}
	return s, nil
}
