package protocol

import "errors"

var (
	// ErrMalformed: the packet does not follow type:id:endpoint[:data].
	ErrMalformed = errors.New("protocol: malformed packet")
	// ErrBadType: the type is not a digit 0-8.
	ErrBadType = errors.New("protocol: bad packet type")
	// ErrBadID: the id is not a decimal number that fits 64 bits.
	ErrBadID = errors.New("protocol: bad packet id")
	// ErrBadFrame: a payload frame is malformed (bad length, or past the end).
	ErrBadFrame = errors.New("protocol: bad payload frame")
	// ErrTooLarge: a packet exceeds the caller's limit.
	ErrTooLarge = errors.New("protocol: packet too large")
	// ErrBadEvent: event data is not {"name":string[,"args":array]}.
	ErrBadEvent = errors.New("protocol: bad event")
	// ErrBadAck: ack data is not <id>[+<JSON array>].
	ErrBadAck = errors.New("protocol: bad ack")
	// ErrBadJSONP: a jsonp POST field is not a JSON string.
	ErrBadJSONP = errors.New("protocol: bad jsonp body")
)
