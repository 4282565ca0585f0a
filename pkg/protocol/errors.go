package protocol

import "errors"

// Every error this package returns is one of these sentinels wrapped with %w
// and a short detail (at most 32 bytes of the input, copied), so callers
// test them with errors.Is. The one exception: DecodePayload returns its
// callback's error as is.
var (
	// ErrMalformed is returned when a packet does not have the
	// type:id:endpoint shape (fewer than two ':'), or by ParseHandshake when a
	// handshake body is not sid:heartbeat:close:transports.
	ErrMalformed = errors.New("protocol: malformed packet")

	// ErrBadType is returned when a packet's type field is not a single
	// digit 0-8.
	ErrBadType = errors.New("protocol: bad packet type")

	// ErrBadID is returned when a packet's id is not a decimal number that
	// fits 64 bits, or a '+' comes without an id.
	ErrBadID = errors.New("protocol: bad packet id")

	// ErrBadFrame is returned by DecodePayload for a malformed frame: a
	// length that is empty, not decimal or too long, a missing closing
	// \ufffd, a length running past the end or into the middle of a
	// character, or bytes between frames that do not start a new frame.
	ErrBadFrame = errors.New("protocol: bad payload frame")

	// ErrTooLarge is returned by DecodePayload when a packet is longer than
	// the caller's limit.
	ErrTooLarge = errors.New("protocol: packet too large")

	// ErrBadEvent is returned by ParseEvent when event data is not a JSON
	// object {"name":string[,"args":array]}.
	ErrBadEvent = errors.New("protocol: bad event")

	// ErrBadAck is returned by ParseAck when ack data is not
	// <id>[+<JSON array>].
	ErrBadAck = errors.New("protocol: bad ack")

	// ErrBadErrorData is returned by ParseErrorData when error packet data
	// is not <reason>[+<advice>] in decimal.
	ErrBadErrorData = errors.New("protocol: bad error packet data")

	// ErrBadJSONP is returned by DecodeJSONPBody when the jsonp POST field
	// d is not a JSON string literal.
	ErrBadJSONP = errors.New("protocol: bad jsonp body")
)
