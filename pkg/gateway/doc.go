// Package gateway serves Socket.IO 0.9 clients over websocket, flashsocket,
// xhr-polling, jsonp-polling and htmlfile, keeping every session in Redis
// (package session) so that any gateway can serve any request of any
// session, behind a round-robin load balancer with no sticky sessions.
//
// A request's life:
//
//	GET  /socket.io/1/                    handshake: admission (admission.go), session.Create, then sid:hb:close:transports
//	GET  /socket.io/1/xhr-polling/<sid>   session.Poll: answer the mailbox, or park until woken
//	POST /socket.io/1/xhr-polling/<sid>   decode the payload, commit its signals, answer 1
//	GET  /socket.io/1/websocket/<sid>     session.OpenStream: this gateway holds the stream
//
// Client packets become signals on the partition streams (package bus);
// invalid UTF-8 is repaired at the edge, on the way in and on the way out
// (utf8.go), so no signal and no write to a client holds any. Packets for
// clients arrive on this gateway's pub/sub channel (streams it holds,
// wake-ups of polls parked here) and on the broadcast channel.
//
// Goroutines: each streaming connection has one reader (the HTTP handler)
// and one writer that owns every write, heartbeats included. One subscriber
// goroutine dispatches route messages; it never blocks on a client: a full
// send queue closes that client with reason "overflow".
//
// Heartbeats: one wheel sends 2:: to every stream held here and ends a
// streaming client silent for the heartbeat timeout (reason
// "heartbeat_timeout"); an htmlfile client's POSTs, which may reach any
// gateway, count as its signs of life (heartbeat.go).
package gateway
