// Package protocol is the Socket.IO 0.9 wire codec. It does no I/O: it
// decodes and encodes packets, polling payloads, the handshake body, and the
// jsonp and htmlfile wrappings, and is used by the gateway, the workers, the
// test client and the load tool alike.
//
// A packet is
//
//	type ":" [id ["+"]] ":" [endpoint] [":" data]
//
// type is one digit 0-8 (see PacketType), id the sender's message id ("+":
// the sender wants a data ack), endpoint the namespace ("" is the default
// one; it cannot contain ':'), data the rest, type-specific.
//
// A polling payload carries one packet as is, or several framed as
//
//	"\ufffd" <length> "\ufffd" <packet> ...
//
// where length counts UTF-16 code units, as JavaScript's String.length does
// (an emoji counts 2).
//
// A session's life, server side:
//
//	GET /socket.io/1/            -> "<sid>:<heartbeat>:<close>:<transports>"   (Handshake)
//	GET /socket.io/1/<t>/<sid>   -> "1::"                    the default namespace is connected
//	client "1::/chat"            -> "1::/chat"               a namespace is connected
//	client "5:1+::{...}"         -> "6:::1+[...]"            an event with a data ack
//	client "3:2::hi"             -> "6:::2"                  a plain ack, answered at once
//	server "2::" every 25s       <- "2::"                    heartbeats on streaming transports
//	client "0::" or server "0::"                              the session ends
package protocol
