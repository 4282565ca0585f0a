// Package protocol is the Socket.IO 0.9 wire codec (protocol version 1, as
// spoken by the socket.io 0.9.x server and socket.io-client 0.9.16). It does
// no I/O: it decodes and encodes packets, polling payloads, the handshake
// body, and the jsonp-polling and htmlfile wrappings. The gateway, the
// workers, the test client and the load tool all use it, and it is usable
// from a test without a server.
//
// # Wire grammar
//
//	packet    = type ":" [id ["+"]] ":" [endpoint] [":" data]
//	type      = "0" | "1" | … | "8"                  ; see PacketType
//	id        = 1*DIGIT                              ; the sender's message id, fits 64 bits
//	"+"                                              ; the sender wants a data ack
//	endpoint  = *(any byte but ":")                  ; the namespace, "" is the default one
//	data      = *(any byte)                          ; type-specific, may contain ':'
//
//	payload   = packet                               ; one packet, unframed
//	          | 1*("\ufffd" length "\ufffd" packet)  ; several, framed (polling transports)
//	length    = 1*DIGIT                              ; the packet's length in UTF-16 code units
//
//	event data = {"name":<string>[,"args":<array>]}  ; type 5, args omitted when empty
//	ack data   = ackId ["+" <JSON array>]            ; type 6
//	error data = reason ["+" advice]                 ; type 7, indexes (Reason*, Advice*)
//	handshake  = sid ":" heartbeat ":" close ":" transport *("," transport)
//
// The decoder follows the reference's regular expression
// ([^:]+):([0-9]+)?(\+)?:([^:]+)?:?([\s\S]*)? but is strict about the type
// and the id; the encoder writes what the reference's encodePacket writes
// ("1::", "2::", "0::/chat", "3:::hi", "7:::1+0"). Lengths in payloads count
// UTF-16 code units, as JavaScript's String.length does: an emoji counts 2,
// so `3:::😀` is framed as "\ufffd6\ufffd3:::😀".
//
// # A session, handshake to disconnect
//
//	client                                   server
//	GET /socket.io/1/?t=…              ->    "<sid>:60:60:websocket,xhr-polling,…"  Handshake
//	GET|WS /socket.io/1/<t>/<sid>      ->    "1::"              the default namespace is connected
//	"1::/chat"                         ->    "1::/chat"         a namespace is joined (echoed)
//	                                   <-    "7::/priv:2"       … or refused (ReasonUnauthorized)
//	"3:2::hi"                          ->    "6:::2"            a plain ack, answered at once
//	`5:1+::{"name":"e","args":["a"]}`  ->    `6:::1+["r"]`      an event; the app answers the data ack
//	                                   <-    `5:1+::{"name":"q"}` the server asks; the client acks
//	`6:::1+["a"]`                      ->                       …with data
//	                                   <-    "2::"              heartbeat (streaming transports, every 25 s)
//	"2::"                              ->                       …echoed
//	                                   <-    "8::"              an idle poll is closed (polling, after 20 s)
//	"0::/chat"                         ->                       a namespace is left
//	"0::"                              ->    or "0::" <-        the session ends
//	any transport request, unknown sid ->    "7:::1+0"          the client handshakes again
//
// Polling transports carry a payload per request; websocket and flashsocket
// carry one packet per text frame, unframed. jsonp-polling wraps each
// response as io.j[N]("<payload>"); (AppendJSONP) and posts the payload as a
// JSON string in form field d (DecodeJSONPBody); htmlfile streams
// <script>_("<payload>");</script> chunks after HTMLFileHeader.
//
// # Invalid UTF-8
//
// Socket.IO 0.9 carries text: the reference server decodes every request
// body and websocket frame with Node's UTF-8 decoder, and browsers close a
// websocket that receives a text frame that is not UTF-8. RepairUTF8 (and
// RepairUTF8String, AppendRepairedUTF8) replaces each maximal invalid
// subsequence with one U+FFFD exactly as that decoder does (the WHATWG
// rule), and returns valid input as is without allocating. The codec
// counts and escapes by the same rule: UTF16Len and the payload decoder
// count a maximal invalid subsequence as one UTF-16 unit, AppendJSString
// writes it as one \ufffd, and DecodeJSONPBody repairs its input first. The
// other decoders pass invalid bytes through unchanged; a server repairs
// what it receives before decoding it and what it sends before framing it.
//
// # Ownership and errors
//
// Decoders alias their input and do not modify it: Packet.Data, the packets
// DecodePayload passes on, and the args of ParseEvent and ParseAck point into
// the input. Append* functions append to dst and return it, as strconv's do,
// so a reused buffer makes encoding allocation-free. Every error wraps one of
// the sentinels in errors.go; test with errors.Is.
package protocol
