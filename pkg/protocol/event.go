package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// noArgs is what ParseEvent returns for an event without args. Its capacity
// is its length, so appending to it copies.
var noArgs = []byte("[]")[:2:2]

// ParseEvent decodes the data of an event packet, {"name":…,"args":[…]}.
// The data must be one JSON object; "name" is required and must be a
// string; "args" is optional and must be an array (null counts as absent);
// other keys are ignored, and of repeated keys the last wins, as with
// JavaScript's JSON.parse. Keys match exactly (not case-insensitively as
// encoding/json's struct decoding would).
//
// args aliases data — the array's bytes exactly as received, not
// re-encoded — so copy it to keep it beyond data's lifetime. An event
// without args gets a shared `[]` that must not be modified. Errors wrap
// ErrBadEvent.
func ParseEvent(data []byte) (name string, args []byte, err error) {
	if !json.Valid(data) {
		return "", nil, fmt.Errorf("%w: not JSON", ErrBadEvent)
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return "", nil, fmt.Errorf("%w: not an object", ErrBadEvent)
	}
	var rawName, rawArgs []byte
	// data is valid JSON, so the walk below needs no bounds or syntax checks.
	for i = skipSpace(data, i+1); data[i] != '}'; {
		keyEnd := stringEnd(data, i)
		key := data[i:keyEnd]
		i = skipSpace(data, skipSpace(data, keyEnd)+1) // past ':'
		valueEnd := valueEnd(data, i)
		switch {
		case keyIs(key, "name"):
			rawName = data[i:valueEnd]
		case keyIs(key, "args"):
			rawArgs = data[i:valueEnd]
		}
		if i = skipSpace(data, valueEnd); data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	if rawName == nil {
		return "", nil, fmt.Errorf("%w: no name", ErrBadEvent)
	}
	if rawName[0] != '"' {
		return "", nil, fmt.Errorf("%w: name is not a string", ErrBadEvent)
	}
	name, err = unquote(rawName)
	if err != nil {
		return "", nil, fmt.Errorf("%w: name: %v", ErrBadEvent, err)
	}
	switch {
	case rawArgs == nil || string(rawArgs) == "null":
		args = noArgs
	case rawArgs[0] == '[':
		args = rawArgs
	default:
		return "", nil, fmt.Errorf("%w: args is not an array", ErrBadEvent)
	}
	return name, args, nil
}

// AppendEvent appends event data {"name":<name>,"args":<args>} to dst,
// omitting "args" when args is empty or exactly `[]`, as the reference does.
// args must be a JSON array; it is not validated (this is the hot path), so
// passing anything else produces data the client cannot parse. Raw U+2028
// and U+2029 in args are written as \u2028 and \u2029 (see AppendJSONArgs).
func AppendEvent(dst []byte, name string, args []byte) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendJS(dst, name, false)
	if len(args) > 0 && string(args) != "[]" {
		dst = append(dst, `,"args":`...)
		dst = AppendJSONArgs(dst, args)
	}
	return append(dst, '}')
}

// AppendJSONArgs appends JSON text with any raw U+2028 and U+2029 written as
// \u2028 and \u2029. In valid JSON they can only occur inside strings, where
// the escape means the same, so the result is the same JSON value. The 0.9
// client parses ack data with a regular expression whose '.' stops at them,
// so raw ones cut an ack's arguments short (the reference server has that
// bug); AppendEvent and AppendAck use this for their args.
func AppendJSONArgs(dst, args []byte) []byte {
	for {
		i := bytes.Index(args, []byte("\xe2\x80"))
		if i < 0 || i+2 >= len(args) {
			return append(dst, args...)
		}
		dst = append(dst, args[:i]...)
		switch args[i+2] {
		case 0xa8:
			dst = append(dst, `\u2028`...)
		case 0xa9:
			dst = append(dst, `\u2029`...)
		default:
			dst = append(dst, args[i:i+3]...)
		}
		args = args[i+3:]
	}
}

// ParseAck decodes the data of an ack packet: `<id>` (a plain ack) or
// `<id>+<JSON array>` (a data ack, hasArgs). args aliases data. Errors wrap
// ErrBadAck: the reference also takes `<id>+` and invalid JSON (as no
// arguments), which the 0.9 client never sends.
func ParseAck(data []byte) (id uint64, args []byte, hasArgs bool, err error) {
	rawID, args, hasArgs := bytes.Cut(data, []byte("+"))
	id, ok := parseUint(rawID)
	if !ok {
		return 0, nil, false, fmt.Errorf("%w: id %q", ErrBadAck, clip(rawID))
	}
	if !hasArgs {
		return id, nil, false, nil
	}
	if !json.Valid(args) || args[skipSpace(args, 0)] != '[' {
		return 0, nil, false, fmt.Errorf("%w: args are not a JSON array", ErrBadAck)
	}
	return id, args, true, nil
}

// AppendAck appends the data of an ack packet to dst: id, then '+' and args
// when hasArgs (U+2028 and U+2029 escaped, see AppendJSONArgs). args must be
// a JSON array; it is not validated.
func AppendAck(dst []byte, id uint64, args []byte, hasArgs bool) []byte {
	dst = strconv.AppendUint(dst, id, 10)
	if hasArgs {
		dst = append(dst, '+')
		dst = AppendJSONArgs(dst, args)
	}
	return dst
}

// Error reasons and advice, as the indexes sent on the wire in error packets
// (7::[endpoint]:reason[+advice]).
const (
	ReasonTransportNotSupported = 0 // "transport not supported"
	ReasonClientNotHandshaken   = 1 // "client not handshaken": the client handshakes again
	ReasonUnauthorized          = 2 // "unauthorized": a namespace refused; the client emits connect_failed
	AdviceReconnect             = 0 // "reconnect"
)

// ErrorPacket returns an error packet for endpoint with data
// reason[+advice]; advice < 0 means none. reason must be >= 0.
// ErrorPacket("", ReasonClientNotHandshaken, AdviceReconnect) encodes as
// "7:::1+0", ErrorPacket("/priv", ReasonUnauthorized, -1) as "7::/priv:2".
func ErrorPacket(endpoint string, reason int, advice int) Packet {
	d := strconv.AppendInt(make([]byte, 0, 8), int64(reason), 10)
	if advice >= 0 {
		d = append(d, '+')
		d = strconv.AppendInt(d, int64(advice), 10)
	}
	return Packet{Type: Error, Endpoint: endpoint, Data: d}
}

// ParseErrorData decodes the data of an error packet, reason[+advice], both
// decimal; advice is -1 when absent. Errors wrap ErrBadErrorData.
func ParseErrorData(data []byte) (reason, advice int, err error) {
	rawReason, rawAdvice, hasAdvice := bytes.Cut(data, []byte("+"))
	r, ok := parseSmall(rawReason)
	if !ok {
		return 0, -1, fmt.Errorf("%w: reason %q", ErrBadErrorData, clip(rawReason))
	}
	if !hasAdvice {
		return r, -1, nil
	}
	a, ok := parseSmall(rawAdvice)
	if !ok {
		return 0, -1, fmt.Errorf("%w: advice %q", ErrBadErrorData, clip(rawAdvice))
	}
	return r, a, nil
}

// parseSmall parses 1 to 9 decimal digits (so the value fits any int).
func parseSmall(b []byte) (int, bool) {
	if len(b) > 9 {
		return 0, false
	}
	v, ok := parseUint(b)
	return int(v), ok
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (len(b) if none).
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i]
// (a '"'). b must be valid JSON.
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index just past the JSON value starting at b[i]. b
// must be valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number, true, false or null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// keyIs reports whether the JSON string raw (with its quotes) is s.
func keyIs(raw []byte, s string) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == s
	}
	u, err := unquote(raw)
	return err == nil && u == s
}

// unquote decodes the JSON string raw (with its quotes). Invalid UTF-8
// becomes U+FFFD, as encoding/json does.
func unquote(raw []byte) (string, error) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}
