package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// rejectReason says why a request, frame, packet or route message was
// rejected: the reason label of realtime_gateway_rejected_total and the
// reason of the "rejected" log line. Every reason is declared here, once,
// with the input it answers and what the client gets; README.md lists
// them (a test keeps the two in step).
//
// It is an integer, not a string, so that the compiler refuses a string
// literal where a reason goes; its label is String.
type rejectReason uint8

const (
	// notRejected is the zero value: the input was accepted (applyPacket's
	// answer). It is never counted.
	notRejected rejectReason = iota

	// Requests (router.go).

	// rejectBadProtocol: a path /socket.io/<v>/... with a protocol
	// version other than 1. The client gets 500 "Protocol version not
	// supported." (the reference's answer).
	rejectBadProtocol
	// rejectUnknownTransport: a transport the gateway does not know or
	// was not configured with (Config.Transports). 400 "unknown transport".
	rejectUnknownTransport
	// rejectBadSID: a session id that is empty, longer than 64 bytes or
	// holds ':' or a newline. 400 "bad session id".
	rejectBadSID
	// rejectBadMethod: a polling request neither GET nor POST. 405 "method
	// not allowed".
	rejectBadMethod
	// rejectBadOrigin: a transport request (polling GET or POST, jsonp,
	// htmlfile, websocket, ?disconnect) or a CORS preflight whose Origin
	// (or Referer) the origins allow-list refuses, as a handshake's is.
	// 403 "bad origin", with no CORS grant.
	rejectBadOrigin
	// rejectStaticDirectory: a static path (Config.StaticDir) naming a
	// directory without an index.html: 404, never a listing.
	rejectStaticDirectory
	// rejectStaticEscape: a static path that the directory's os.Root
	// refuses: a symbolic link leading out of Config.StaticDir (or a loop).
	// 404.
	rejectStaticEscape

	// Handshakes (handshake.go, admission.go): the reason of a refused
	// handshake is "handshake_" + its result label in
	// realtime_gateway_handshakes_total. A jsonp handshake gets its error
	// in a script instead (status 200).

	// rejectBadJSONPIndex: a handshake's ?jsonp= or a jsonp-polling GET's
	// ?i= that is not a valid index. 400 "bad jsonp index".
	rejectBadJSONPIndex
	// rejectHandshakeBadOrigin: a handshake whose Origin (or Referer) the
	// origins allow-list refuses. 403 "handshake bad origin".
	rejectHandshakeBadOrigin
	// rejectHandshakeTooLarge: a handshake whose query and URL alone make
	// the data its session would keep larger than
	// Config.MaxHandshakeBytes (headers are dropped first). 414
	// "handshake too large".
	rejectHandshakeTooLarge
	// rejectHandshakeAuthError: the authorization hook failed or did not
	// answer within Config.AuthorizeTimeout (fail-closed). 500 "handshake
	// error".
	rejectHandshakeAuthError
	// rejectHandshakeUnauthorized: the authorization hook refused the
	// handshake. 403 "handshake unauthorized".
	rejectHandshakeUnauthorized
	// rejectHandshakeOverRate: the handshake rate would admit the
	// handshake only after Config.HandshakeHold. 503 with Retry-After.
	rejectHandshakeOverRate
	// rejectHandshakeQueueFull: Config.MaxHandshakeQueue handshakes were
	// held already. 503 with Retry-After.
	rejectHandshakeQueueFull
	// rejectHandshakeOverConnections: Config.MaxConnections connections
	// and parked polls are held here. 503 with Retry-After.
	rejectHandshakeOverConnections
	// rejectHandshakeDraining: the gateway is draining and the rate would
	// make the handshake wait. 503 with Retry-After.
	rejectHandshakeDraining
	// rejectHandshakeStoreUnavailable: the session could not be committed
	// to Redis within the hold. 503 "handshake error: session store
	// unavailable".
	rejectHandshakeStoreUnavailable

	// Opening a transport (websocket.go, htmlfile.go, polling.go).

	// rejectNotWebSocket: a websocket or flashsocket request without an
	// upgrade. 400 "websocket upgrade expected".
	rejectNotWebSocket
	// rejectOverConnections: a websocket or flashsocket beyond
	// Config.MaxConnections. 503 "server over capacity".
	rejectOverConnections
	// rejectWebSocketUpgrade: the upgrade failed (bad headers, data sent
	// before the 101). The client gets gorilla/websocket's answer: 400 or
	// 405 (an origin the allow-list refuses is rejectBadOrigin, before the
	// upgrade).
	rejectWebSocketUpgrade
	// rejectNoFlusher: an htmlfile request on a server that cannot stream
	// a response. 500 "streaming unsupported".
	rejectNoFlusher
	// rejectUnknownSID: a transport request for a session Redis does not
	// know (never made, or ended). The client gets 7:::1+0 (client not
	// handshaken, reconnect): the answer to a poll or POST, a frame before
	// the close on a websocket, a script on htmlfile; it handshakes again.
	rejectUnknownSID
	// rejectWrongTransport: a transport of the other class (polling versus
	// streaming) for a session that opened one. The client gets 7:::0
	// (transport not supported), as for rejectUnknownSID.
	rejectWrongTransport
	// rejectSessionHeld: a websocket, flashsocket or htmlfile request for
	// a session a streaming connection holds already (on any gateway;
	// session.ErrSessionHeld). The holder goes on untouched; the newcomer
	// gets 7:::1+0 (handshake again) and is closed. The 0.9 client never
	// opens a second stream on one sid, so this is someone else holding
	// the sid (issue 16: session takeover).
	rejectSessionHeld
	// rejectDisconnectRefused: a ?disconnect request for a session held
	// by a streaming transport (which ends it by sending 0:: on its own
	// connection), or naming a transport that is not the polling
	// session's. 403 "disconnect refused"; the session goes on.
	rejectDisconnectRefused
	// rejectSessionBinding: a transport request (any transport, or
	// ?disconnect) without the session's binding cookie, when
	// Config.SessionBindingSecret is set (binding.go). 403; the session
	// goes on.
	rejectSessionBinding
	// rejectOpenFailed: Redis failed while a streaming transport opened its
	// session (also counted in realtime_gateway_redis_errors_total{op="open"}).
	// The connection is closed without a packet: the session may be alive,
	// and the client tries its next transport after its connect timeout.
	rejectOpenFailed
	// rejectPollOnStream: a poll for a session a streaming connection
	// holds (the client fell back to polling, with the same sid, while its
	// websocket still looks open). The poll waits, as the reference's
	// does, instead of being answered at once.
	rejectPollOnStream

	// POST bodies (polling.go).

	// rejectBodyTooLarge: a POST body over Config.MaxBodyBytes. 413
	// "request body too large".
	rejectBodyTooLarge
	// rejectBodyRead: a POST body that could not be read. 400 "cannot read
	// request body".
	rejectBodyRead
	// rejectBadJSONPBody: a jsonp-polling POST without the form field d,
	// or whose d is not a JSON string. 400.
	rejectBadJSONPBody
	// rejectStoreUnavailable: a POST while Redis fails (looking up the
	// session or committing its signals). 503 "session store unavailable".
	rejectStoreUnavailable
	// rejectBadPayload: a POST payload whose framing is malformed. The
	// packets before the bad frame are committed; 400 "malformed payload".
	rejectBadPayload
	// rejectPacketTooLarge: a packet over Config.MaxPacketBytes (after
	// repairing invalid UTF-8). In a POST: 400 "packet too large", the
	// packets before it committed; on a websocket: the connection is
	// closed (reason transport_close).
	rejectPacketTooLarge

	// Frames and packets (websocket.go, inbound.go). A rejected packet
	// changes nothing. The client gets an error packet and, for a packet
	// with an ack id, its ack (answerRejected): at once on a websocket or
	// flashsocket, through its mailbox (or htmlfile stream) for a POSTed
	// packet (at most Config.MaxBadPackets answered per POST; the POST
	// itself is still answered 1).

	// rejectBinaryFrame: a binary websocket frame (0.9 sends text only).
	rejectBinaryFrame
	// rejectWebSocketProtocol: a websocket client broke RFC 6455 (a bad
	// opcode, reserved bits, a bad close code, a control frame over 125
	// bytes, ...): closed with 1002 (wsengine.ErrProtocol).
	rejectWebSocketProtocol
	// rejectMalformedPacket: a packet that does not decode.
	rejectMalformedPacket
	// rejectBadNamespace: an endpoint that is not "/" followed by printable
	// UTF-8 without ':' (at most 256 bytes).
	rejectBadNamespace
	// rejectClientErrorPacket: an error packet (7) from the client.
	rejectClientErrorPacket
	// rejectNamespaceNotConnected: a message, json, event or ack packet for
	// a namespace the client did not connect.
	rejectNamespaceNotConnected
	// rejectBadJSON: a json packet (4) whose data is not JSON.
	rejectBadJSON
	// rejectBadEvent: an event packet (5) whose data is not
	// {"name":...,"args":[...]}.
	rejectBadEvent
	// rejectBadAck: an ack packet (6) whose data is not <id>[+<json args>].
	rejectBadAck
	// rejectTooManyNamespaces: a connect packet (1::/ns) for a namespace
	// beyond Config.MaxNamespaces connected ones. The client gets
	// 7::/ns:2 (unauthorized: the 0.9 client emits connect_failed on the
	// namespace) on every transport.
	rejectTooManyNamespaces
	// rejectUnknownPacketType: a packet type that decodes but that the
	// gateway does not take from clients.
	rejectUnknownPacketType

	// Route messages (dispatch.go).

	// rejectBadRoute: an entry of this gateway's route stream that
	// does not parse (a worker or script out of step with package bus).
	// Dropped; no client is told.
	rejectBadRoute

	// numRejectReasons counts the values above (notRejected included).
	numRejectReasons
)

// handshakePrefix starts the label of every refused handshake's reason.
const handshakePrefix = "handshake_"

// rejectNames are the labels of the reasons, in the order declared.
var rejectNames = [numRejectReasons]string{
	notRejected:                     "",
	rejectBadProtocol:               "bad_protocol",
	rejectUnknownTransport:          "unknown_transport",
	rejectBadSID:                    "bad_sid",
	rejectBadMethod:                 "bad_method",
	rejectBadOrigin:                 "bad_origin",
	rejectStaticDirectory:           "static_directory",
	rejectStaticEscape:              "static_escape",
	rejectBadJSONPIndex:             "bad_jsonp_index",
	rejectHandshakeBadOrigin:        handshakePrefix + "bad_origin",
	rejectHandshakeTooLarge:         handshakePrefix + "too_large",
	rejectHandshakeAuthError:        handshakePrefix + "auth_error",
	rejectHandshakeUnauthorized:     handshakePrefix + "unauthorized",
	rejectHandshakeOverRate:         handshakePrefix + resultOverRate,
	rejectHandshakeQueueFull:        handshakePrefix + resultQueueFull,
	rejectHandshakeOverConnections:  handshakePrefix + resultOverConnections,
	rejectHandshakeDraining:         handshakePrefix + resultDraining,
	rejectHandshakeStoreUnavailable: handshakePrefix + resultStoreUnavailable,
	rejectNotWebSocket:              "not_websocket",
	rejectOverConnections:           "over_connections",
	rejectWebSocketUpgrade:          "websocket_upgrade",
	rejectNoFlusher:                 "no_flusher",
	rejectUnknownSID:                "unknown_sid",
	rejectWrongTransport:            "wrong_transport",
	rejectSessionHeld:               "session_held",
	rejectDisconnectRefused:         "disconnect_refused",
	rejectSessionBinding:            "session_binding",
	rejectOpenFailed:                "open_failed",
	rejectPollOnStream:              "poll_on_stream",
	rejectBodyTooLarge:              "body_too_large",
	rejectBodyRead:                  "body_read",
	rejectBadJSONPBody:              "bad_jsonp_body",
	rejectStoreUnavailable:          "store_unavailable",
	rejectBadPayload:                "bad_payload",
	rejectPacketTooLarge:            "packet_too_large",
	rejectBinaryFrame:               "binary_frame",
	rejectWebSocketProtocol:         "websocket_protocol",
	rejectMalformedPacket:           "malformed_packet",
	rejectBadNamespace:              "bad_namespace",
	rejectClientErrorPacket:         "client_error_packet",
	rejectNamespaceNotConnected:     "namespace_not_connected",
	rejectBadJSON:                   "bad_json",
	rejectBadEvent:                  "bad_event",
	rejectBadAck:                    "bad_ack",
	rejectTooManyNamespaces:         "too_many_namespaces",
	rejectUnknownPacketType:         "unknown_packet_type",
	rejectBadRoute:                  "bad_route",
}

// String returns the reason's label.
func (r rejectReason) String() string {
	if r < numRejectReasons {
		return rejectNames[r]
	}
	return "unknown"
}

// handshakeResult is the result label (realtime_gateway_handshakes_total)
// of a handshake refused for r: its label without "handshake_".
func (r rejectReason) handshakeResult() string {
	return strings.TrimPrefix(r.String(), handshakePrefix)
}

// rejectLogEvery is the least time between two "rejected" log lines of
// one reason; the next line says how many went unlogged (unlogged=). A
// client sending garbage as fast as it can costs a line per second per
// reason, not one per packet.
const rejectLogEvery = time.Second

// rejected counts bad input by reason and logs it: every rejection goes
// through here (or through reject), so each is counted and has a log line,
// at most one per reason per rejectLogEvery.
func (g *Gateway) rejected(reason rejectReason, attrs ...any) {
	g.metrics.rejected(reason)
	if reason >= numRejectReasons {
		reason = notRejected
	}
	ok, skipped := g.rejectLog[reason].Allow(time.Now(), rejectLogEvery)
	if !ok {
		return
	}
	attrs = append([]any{"reason", reason.String()}, attrs...)
	if skipped > 0 {
		attrs = append(attrs, "unlogged", skipped)
	}
	g.log.Info("rejected", attrs...)
}

// reject answers a bad request with status and body, counts it and logs it.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, status int, reason rejectReason, body string) {
	g.rejected(reason, "method", r.Method, "path", logPath(r.URL.Path), "remote", r.RemoteAddr)
	g.cors(w, r)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// logPath returns what logs print of a request path: a transport path
// /socket.io/1/<transport>/<sid>... with its session id shortened
// (session.LogSID), any other path as it is.
func logPath(p string) string {
	parts := strings.SplitN(p, "/", 6) // "", "socket.io", "1", transport, sid, rest
	if len(parts) < 5 || parts[1] != "socket.io" || parts[4] == "" {
		return p
	}
	parts[4] = session.LogSID(parts[4])
	return strings.Join(parts, "/")
}

// Error packets for a transport request whose session cannot be served
// (protocol-0.9.md, error packets: reason 0 transport not supported, 1
// client not handshaken; advice 0 reconnect).
var (
	// errorPacket is 7:::1+0, client not handshaken: the client handshakes
	// again.
	errorPacket = string(protocol.Encode(protocol.ErrorPacket("", protocol.ReasonClientNotHandshaken, protocol.AdviceReconnect)))
	// wrongTransportPacket is 7:::0, transport not supported.
	wrongTransportPacket = string(protocol.Encode(protocol.ErrorPacket("", protocol.ReasonTransportNotSupported, -1)))
)

// sessionRefusal reports whether err, from the session store, is one the
// client is told about, and how: session.ErrUnknownSession is
// rejectUnknownSID with errorPacket, session.ErrWrongTransport is
// rejectWrongTransport with wrongTransportPacket, session.ErrSessionHeld
// is rejectSessionHeld with errorPacket. Any other error (Redis failed) is
// not: ok is false.
func sessionRefusal(err error) (reason rejectReason, packet string, ok bool) {
	switch {
	case errors.Is(err, session.ErrSessionHeld):
		return rejectSessionHeld, errorPacket, true
	case errors.Is(err, session.ErrUnknownSession):
		return rejectUnknownSID, errorPacket, true
	case errors.Is(err, session.ErrWrongTransport):
		return rejectWrongTransport, wrongTransportPacket, true
	}
	return notRejected, "", false
}

// openFailed is the one answer to a streaming transport (websocket,
// flashsocket, htmlfile) whose session could not be opened
// (session.Store.OpenStream failed): it counts and logs the rejection
// (sessionRefusal's reason, or rejectOpenFailed and a Redis error) and
// returns the packet the transport writes before it closes ("" none: after
// a Redis error the session may be alive, so the client is not told to
// handshake again).
func (g *Gateway) openFailed(transport, sid string, err error) (packet string) {
	reason, packet, ok := sessionRefusal(err)
	if !ok {
		reason = rejectOpenFailed
		g.metrics.RedisErrors.WithLabelValues("open").Inc()
	}
	g.rejected(reason, "transport", transport, "sid", session.LogSID(sid), "err", err)
	return packet
}
