package protocol

import (
	"bytes"
	"strconv"
)

// PacketType is a packet's type digit.
type PacketType uint8

// Packet types.
const (
	Disconnect PacketType = 0 // 0::[endpoint]
	Connect    PacketType = 1 // 1::[endpoint][:?query]
	Heartbeat  PacketType = 2 // 2::
	Message    PacketType = 3 // 3:[id][+]:[endpoint]:text
	JSON       PacketType = 4 // 4:[id][+]:[endpoint]:json
	Event      PacketType = 5 // 5:[id][+]:[endpoint]:{"name":…,"args":[…]}
	Ack        PacketType = 6 // 6::[endpoint]:id[+json array]
	Error      PacketType = 7 // 7::[endpoint]:reason[+advice]
	Noop       PacketType = 8 // 8::
)

var typeNames = [...]string{"disconnect", "connect", "heartbeat", "message", "json", "event", "ack", "error", "noop"}

// String returns the type's name.
func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// Packet is one decoded packet. Decode aliases its input: Data points into
// it, so copy Data to keep it beyond the input's lifetime.
type Packet struct {
	Type     PacketType
	ID       uint64 // the message id; meaningful when HasID
	HasID    bool
	AckData  bool   // "+" after the id: the sender wants a data ack
	Endpoint string // the namespace, "" for the default one
	Data     []byte // what follows the third ':' (nil when absent)
}

// Decode parses one packet. It is strict where the reference's regular
// expression is loose: the type must be one digit 0-8 and the id a decimal
// number that fits 64 bits. It does not allocate when the endpoint is "".
func Decode(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 3 || b[1] != ':' {
		return p, ErrMalformed
	}
	if b[0] < '0' || b[0] > '8' {
		return p, ErrBadType
	}
	p.Type = PacketType(b[0] - '0')
	rest := b[2:]
	i := bytes.IndexByte(rest, ':')
	if i < 0 {
		return p, ErrMalformed
	}
	id := rest[:i]
	if n := len(id); n > 0 && id[n-1] == '+' {
		p.AckData = true
		id = id[:n-1]
		if len(id) == 0 {
			return p, ErrBadID
		}
	}
	if len(id) > 0 {
		var v uint64
		for _, c := range id {
			if c < '0' || c > '9' {
				return p, ErrBadID
			}
			nv := v*10 + uint64(c-'0')
			if nv/10 != v {
				return p, ErrBadID
			}
			v = nv
		}
		p.ID, p.HasID = v, true
	}
	rest = rest[i+1:]
	if j := bytes.IndexByte(rest, ':'); j >= 0 {
		p.Endpoint = string(rest[:j])
		p.Data = rest[j+1:]
	} else {
		p.Endpoint = string(rest)
	}
	return p, nil
}

// DecodeString is Decode for a string (it copies s).
func DecodeString(s string) (Packet, error) { return Decode([]byte(s)) }

// AppendPacket appends p's encoding, as the reference encodes it: the data
// part (with its ':') only when Data is non-empty, so 1::, 8::, 0::/chat.
func AppendPacket(dst []byte, p Packet) []byte {
	dst = append(dst, byte('0'+p.Type), ':')
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

// Encode returns p's encoding.
func Encode(p Packet) []byte { return AppendPacket(nil, p) }

// String returns p's encoding as a string.
func (p Packet) String() string { return string(Encode(p)) }
