package session

import "errors"

var (
	// ErrUnknownSession means the session id is not (or no longer) in Redis:
	// never handshaken, expired, or ended. Transports answer it with the
	// "client not handshaken" error packet (7:::1+0).
	ErrUnknownSession = errors.New("session: unknown session")

	// ErrWrongTransport means a transport of another class (polling versus
	// streaming) was requested for a session that already opened one.
	ErrWrongTransport = errors.New("session: transport does not match the session's")

	// ErrOverflow means a mailbox was full; the session was ended with
	// reason "overflow".
	ErrOverflow = errors.New("session: mailbox overflow")
)
