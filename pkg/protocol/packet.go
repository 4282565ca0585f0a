package protocol

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// PacketType is a packet's type, the digit before its first ':'.
type PacketType uint8

// Packet types, with their layout on the wire. [x] is optional; id is the
// sender's message id and "+" (only after an id) asks for a data ack.
const (
	Disconnect PacketType = 0 // 0::[endpoint] — "" ends the session, "/ns" leaves a namespace
	Connect    PacketType = 1 // 1::[endpoint][:?query] — "1::" opens a transport, "1::/ns" joins /ns
	Heartbeat  PacketType = 2 // 2:: — sent by the server, echoed by the client
	Message    PacketType = 3 // 3:[id[+]]:[endpoint]:text — data is raw text
	JSON       PacketType = 4 // 4:[id[+]]:[endpoint]:json — data is any JSON value
	Event      PacketType = 5 // 5:[id[+]]:[endpoint]:{"name":…[,"args":[…]]} — see ParseEvent
	Ack        PacketType = 6 // 6::[endpoint]:ackId[+[…]] — see ParseAck
	Error      PacketType = 7 // 7::[endpoint]:reason[+advice] — see ErrorPacket
	Noop       PacketType = 8 // 8:: — closes an idle poll
)

var typeNames = [...]string{"disconnect", "connect", "heartbeat", "message", "json", "event", "ack", "error", "noop"}

// String returns the type's name as the reference spells it ("disconnect",
// "connect", …, "noop"), or "unknown".
func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// Packet is one decoded packet. Decode aliases its input: Data points into
// it, so copy Data to keep it beyond the input's lifetime or to modify it.
type Packet struct {
	Type     PacketType
	ID       uint64 // the message id; meaningful only when HasID
	HasID    bool
	AckData  bool   // the '+' after the id: the sender wants a data ack
	Endpoint string // the namespace, "" for the default one; never contains ':'
	// Data is everything after the third ':'. Decode leaves it nil when
	// there is no third ':' and empty (non-nil) when nothing follows it;
	// AppendPacket writes the ':' and data only when Data is non-empty.
	Data []byte
}

// Decode parses one packet, type:id[+]:endpoint[:data], as the reference's
// regular expression ([^:]+):([0-9]+)?(\+)?:([^:]+)?:?([\s\S]*)? does, but
// strictly: the type must be one digit 0-8 (ErrBadType), the id a decimal
// number that fits 64 bits with '+' only after it (ErrBadID), and there must
// be at least two ':' (ErrMalformed). Data aliases b. Decode does not
// allocate unless the endpoint is non-empty (the Endpoint string) or it
// fails (the error's detail).
func Decode(b []byte) (Packet, error) {
	var p Packet
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return p, fmt.Errorf("%w: no ':' in %q", ErrMalformed, clip(b))
	}
	if i != 1 || b[0] < '0' || b[0] > '8' {
		return p, fmt.Errorf("%w: %q", ErrBadType, clip(b[:i]))
	}
	p.Type = PacketType(b[0] - '0')
	rest := b[2:]
	j := bytes.IndexByte(rest, ':')
	if j < 0 {
		return Packet{}, fmt.Errorf("%w: one ':' in %q", ErrMalformed, clip(b))
	}
	if id := rest[:j]; len(id) > 0 {
		if id[len(id)-1] == '+' {
			p.AckData = true
			id = id[:len(id)-1]
		}
		v, ok := parseUint(id)
		if !ok {
			return Packet{}, fmt.Errorf("%w: %q", ErrBadID, clip(rest[:j]))
		}
		p.ID, p.HasID = v, true
	}
	rest = rest[j+1:]
	if k := bytes.IndexByte(rest, ':'); k >= 0 {
		p.Endpoint = string(rest[:k])
		p.Data = rest[k+1:]
	} else {
		p.Endpoint = string(rest)
	}
	return p, nil
}

// DecodeString is Decode for a string. Data is a copy of part of s.
func DecodeString(s string) (Packet, error) { return Decode([]byte(s)) }

// AppendPacket appends p's encoding to dst, as the reference's
// parser.encodePacket writes it: type:id[+]:endpoint, then ':' and the data
// only when Data is non-empty — so "1::", "2::", "0::/chat", "3:::hi",
// `5:1+::{"name":"a"}`, `6:::3+["ok"]`, "7:::1+0". The '+' is written only
// with an id. p.Endpoint must not contain ':' (it could not be decoded back).
func AppendPacket(dst []byte, p Packet) []byte {
	if p.Type <= 9 {
		dst = append(dst, byte('0'+p.Type))
	} else {
		dst = strconv.AppendUint(dst, uint64(p.Type), 10)
	}
	dst = append(dst, ':')
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
		if p.AckData {
			dst = append(dst, '+')
		}
	}
	dst = append(dst, ':')
	dst = append(dst, p.Endpoint...)
	if len(p.Data) > 0 {
		dst = append(dst, ':')
		dst = append(dst, p.Data...)
	}
	return dst
}

// Encode returns p's encoding in a new slice (see AppendPacket).
func Encode(p Packet) []byte {
	return AppendPacket(make([]byte, 0, 8+len(p.Endpoint)+len(p.Data)), p)
}

// String returns p's encoding (see AppendPacket).
func (p Packet) String() string { return string(Encode(p)) }

// parseUint parses a non-empty run of ASCII digits that fits a uint64. It
// accepts leading zeros, as the reference does.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// clip returns a copy of at most the first 32 bytes of b, for an error's
// detail: errors do not alias their input, nor quote much of it.
func clip(b []byte) string {
	const limit = 32
	if len(b) > limit {
		return string(b[:limit]) + "…"
	}
	return string(b)
}
