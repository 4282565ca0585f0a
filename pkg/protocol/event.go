package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ParseEvent decodes event data {"name":…,"args":[…]}: name is required,
// args defaults to [] and must be an array. args aliases data.
func ParseEvent(data []byte) (string, []byte, error) {
	var ev struct {
		Name *string         `json:"name"`
		Args json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if ev.Name == nil {
		return "", nil, fmt.Errorf("%w: no name", ErrBadEvent)
	}
	args := []byte(ev.Args)
	if len(args) == 0 || string(args) == "null" {
		args = []byte("[]")
	} else if args[0] != '[' {
		return "", nil, fmt.Errorf("%w: args is not an array", ErrBadEvent)
	}
	return *ev.Name, args, nil
}

// appendJSONArgs appends JSON with raw U+2028 and U+2029 written as \u2028
// and \u2029 (they can only occur inside strings, so this is always valid
// JSON): the 0.9 client parses ack data with a regular expression whose '.'
// stops at them, so raw ones cut an ack's arguments short (the reference
// server has that bug).
func appendJSONArgs(dst, args []byte) []byte {
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

// AppendEvent appends {"name":<name>,"args":<args>}, omitting args when
// it is empty or [] (as the reference does). args must be a JSON array; it is
// not validated here.
func AppendEvent(dst []byte, name string, args []byte) []byte {
	dst = append(dst, `{"name":`...)
	dst = AppendJSString(dst, []byte(name))
	if len(args) > 0 && string(args) != "[]" {
		dst = append(dst, `,"args":`...)
		dst = appendJSONArgs(dst, args)
	}
	return append(dst, '}')
}

// ParseAck decodes ack data: <id> or <id>+<JSON array>. args aliases data.
func ParseAck(data []byte) (uint64, []byte, bool, error) {
	idPart, args, hasArgs := bytes.Cut(data, []byte("+"))
	if len(idPart) == 0 {
		return 0, nil, false, ErrBadAck
	}
	id, err := strconv.ParseUint(string(idPart), 10, 64)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: id", ErrBadAck)
	}
	if hasArgs && (!json.Valid(args) || len(args) == 0 || args[0] != '[') {
		return 0, nil, false, fmt.Errorf("%w: args", ErrBadAck)
	}
	return id, args, hasArgs, nil
}

// AppendAck appends ack data: id, and +args when hasArgs (U+2028 and
// U+2029 escaped, see appendJSONArgs).
func AppendAck(dst []byte, id uint64, args []byte, hasArgs bool) []byte {
	dst = strconv.AppendUint(dst, id, 10)
	if hasArgs {
		dst = append(dst, '+')
		dst = appendJSONArgs(dst, args)
	}
	return dst
}

// Error reasons and advice, as indexes on the wire (7:::reason+advice).
const (
	ReasonTransportNotSupported = 0
	ReasonClientNotHandshaken   = 1
	ReasonUnauthorized          = 2
	AdviceReconnect             = 0
)

// ErrorPacket returns an error packet; advice < 0 means none.
func ErrorPacket(endpoint string, reason int, advice int) Packet {
	d := strconv.Itoa(reason)
	if advice >= 0 {
		d += "+" + strconv.Itoa(advice)
	}
	return Packet{Type: Error, Endpoint: endpoint, Data: []byte(d)}
}

// ParseErrorData decodes error data reason[+advice]; advice is -1 when absent.
func ParseErrorData(data []byte) (int, int, error) {
	r, a, has := strings.Cut(string(data), "+")
	reason, err := strconv.Atoi(r)
	if err != nil {
		return 0, -1, ErrMalformed
	}
	advice := -1
	if has {
		if advice, err = strconv.Atoi(a); err != nil {
			return 0, -1, ErrMalformed
		}
	}
	return reason, advice, nil
}
