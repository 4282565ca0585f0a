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

	// ErrSessionHeld means a streaming transport asked to open a session
	// that a streaming transport holds already (Config.ExclusiveStreams):
	// a live websocket is never replaced by another connection on the
	// same sid, which would let anyone holding the sid take the session
	// over.
	ErrSessionHeld = errors.New("session: held by another streaming connection")

	// ErrOverflow means a mailbox was full; the session was ended with
	// reason "overflow".
	ErrOverflow = errors.New("session: mailbox overflow")

	// ErrStalled means ReapGateways ended nothing because this node's own
	// liveness key had run down since it was renewed: Redis (or this
	// process) stalled, so other gateways' keys may have expired for the
	// same reason although they are alive.
	ErrStalled = errors.New("session: liveness stalled; no gateway reaped")
)
