package bridge

import (
	"encoding/json"

	"github.com/realtime/realtime/pkg/session"
)

// Version is the version of the request and answer schema (the "v" field);
// docs/bridge.md documents it.
const Version = 1

// Signal types (Signal.Type).
const (
	TypeConnect    = "connect"    // a socket connected to a namespace
	TypeDisconnect = "disconnect" // once per connect; Reason says why
	TypeMessage    = "message"    // socket.send: Data is a JSON string
	TypeJSON       = "json"       // socket.json.send: Data is the value
	TypeEvent      = "event"      // socket.emit: Name, Args, AckID when the client wants an ack
	TypeAck        = "ack"        // the client's answer to an emit_ack effect: AckID, Args
)

// Request is the body of each POST: the signals of one partition, in
// stream order (so one session's signals are in the order its client sent
// them).
type Request struct {
	V       int      `json:"v"`
	Signals []Signal `json:"signals"`
}

// Signal is one thing a client did.
type Signal struct {
	// ID is unique per signal (a Redis stream entry id): an app keeps it
	// to make its own side effects idempotent; a retried signal keeps it.
	ID string `json:"id"`
	// Attempt counts the times this bridge process has sent the signal,
	// this one included (1 the first time; another process starts again).
	Attempt int `json:"attempt"`
	// Type is one of the Type constants.
	Type string `json:"type"`
	// SID is the session id; Namespace "" is the default namespace.
	SID       string `json:"sid"`
	Namespace string `json:"namespace"`
	// Time is when the gateway received it, in unix milliseconds.
	Time int64 `json:"time"`
	// Transport (connect) is the session's transport, e.g. "websocket".
	Transport string `json:"transport,omitempty"`
	// Query (connect) is the namespace connect query, e.g. "?token=x".
	Query string `json:"query,omitempty"`
	// Reason (disconnect) is "client", "timeout", "server", … (bus.Reason*).
	Reason string `json:"reason,omitempty"`
	// Data is the text of a message (a JSON string) or a JSON message's
	// value.
	Data json.RawMessage `json:"data,omitempty"`
	// Name is an event's name.
	Name string `json:"name,omitempty"`
	// Args is an event's arguments, or an ack's (a JSON array).
	Args json.RawMessage `json:"args,omitempty"`
	// AckID is, for an event, present when the client asked for an ack
	// (answer with an "ack" effect or "reject"); for an ack, the ack_id of
	// the emit_ack effect the client answers.
	AckID *uint64 `json:"ack_id,omitempty"`
	// Handshake is what the gateway kept of the session's handshake
	// request (headers it allow-lists, query, address, …); null when the
	// session is gone (a late disconnect).
	Handshake *session.Handshake `json:"handshake"`
	// Auth is the data an authorize hook kept with the session, if any.
	Auth json.RawMessage `json:"auth,omitempty"`
}

// Answer is the body the app answers with (status 2xx,
// Content-Type application/json): one Result per signal, in order.
// Fewer results than signals: the rest are sent again in a later request.
type Answer struct {
	V       int      `json:"v"`
	Results []Result `json:"results"`
}

// Result is the app's answer to one signal. Error set: the signal failed
// (retried, then dead-lettered; the results after it are ignored and their
// signals sent again). Otherwise Effects are committed together with the
// signal, in order; Reject (a JSON array) marks invalid client input: the
// client's ack, if it asked for one and no "ack" effect answered it, gets
// Reject as its arguments, and the signal is counted "rejected".
type Result struct {
	Effects []Effect        `json:"effects,omitempty"`
	Reject  json.RawMessage `json:"reject,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// Effect ops (Effect.Op).
const (
	OpAck        = "ack"        // answer the event's ack: Args
	OpEmit       = "emit"       // Name, Args; to a target
	OpSend       = "send"       // Data (a JSON string); to a target
	OpJSON       = "json"       // Data (any JSON value); to a target
	OpJoin       = "join"       // Room; SID/Namespace optional
	OpLeave      = "leave"      // Room; SID/Namespace optional
	OpDisconnect = "disconnect" // SID/Namespace optional
	OpEmitAck    = "emit_ack"   // Name, Args, AckID; SID/Namespace optional
)

// Effect is one action of the app. The target of emit, send and json is
// the signal's socket, unless Room is set (the room's members in the
// namespace), Broadcast is true (every socket of the namespace) or SID is
// set (that socket); Except leaves one socket out of a room or broadcast.
// Namespace defaults to the signal's.
type Effect struct {
	Op        string          `json:"op"`
	Name      string          `json:"name,omitempty"`
	Args      json.RawMessage `json:"args,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	AckID     uint64          `json:"ack_id,omitempty"`
	SID       string          `json:"sid,omitempty"`
	Namespace *string         `json:"namespace,omitempty"`
	Room      string          `json:"room,omitempty"`
	Broadcast bool            `json:"broadcast,omitempty"`
	Except    string          `json:"except,omitempty"`
}
