// Package gateway serves Socket.IO 0.9 clients over websocket, flashsocket,
// xhr-polling, jsonp-polling and htmlfile, keeping every session in Redis
// (package session) so that any gateway can serve any request of any
// session, behind a round-robin load balancer with no sticky sessions.
//
// A request's life:
//
//	GET  /socket.io/1/                    handshake: admission (admission.go), session.Create, then sid:hb:close:transports
//	GET  /socket.io/1/xhr-polling/<sid>   session.Poll: answer the mailbox, or park until woken or offered a packet
//	POST /socket.io/1/xhr-polling/<sid>   decode the payload, commit its signals, answer 1
//	GET  /socket.io/1/websocket/<sid>     session.OpenStream: this gateway holds the connection
//
// Client packets become signals on the partition streams (package bus),
// written through a bus.Committer (batches of writes in MULTI/EXEC, a
// session's in order); invalid UTF-8 is repaired at the edge, on the way in
// and on the way out (utf8.go), so no signal and no write to a client holds
// any. Packets for clients arrive on this gateway's route stream (a
// bus.RouteReader in dispatch.go: connections it holds, broadcasts,
// wake-ups of polls parked here), read from where it left off across Redis
// outages; a gap it cannot recover (Redis lost the stream, or restarted
// from older data) ends every stream held here and wakes every poll parked
// here (routeGap), so no client waits for what will never come.
//
// Words: a "stream" is a Redis stream (package bus) or the session class
// of a session a streaming transport holds (package session); the
// connection this gateway holds for such a session is a streamConn.
//
// Files, by concern:
//
//	gateway.go      the Gateway: New, Start, drain, Shutdown, readiness
//	router.go       ServeHTTP: which handler serves a request; ?disconnect
//	server.go       HTTPServer: header, body and idle timeouts
//	cors.go         the reference's CORS headers, preflight answers
//	static.go       the client script and the static directory
//	reject.go       rejections: every reason (rejectReason), counted and
//	                logged; the error packets; openFailed, the one answer to
//	                a streaming transport whose session cannot be opened
//	handshake.go    handshakes and the authorization hook
//	admission.go    handshake admission control (held, not refused)
//	origins.go      the origins allow-list and the Flash policy it makes
//	flash.go        the Flash socket policy server
//	polling.go      xhr-polling and jsonp-polling: polls, POSTs (a retried
//	                POST applied once)
//	inbound.go      one client packet to signals and answers (applyPacket)
//	streamconn.go   streamConn: a streaming connection's session side (its
//	                queue, the hand-off of its writes, its end) and conn,
//	                the seam to its socket
//	websocket.go    websocket and flashsocket: upgrade, open, the frames
//	                read (streamConn as wsengine.Handler)
//	htmlfile.go     htmlfile, and htmlfileConn, its conn
//	wheel.go        wheel: elements served one slot per tick, each once per
//	                interval, from one goroutine while any is held
//	heartbeat.go    the heartbeat wheel and the heartbeat timeout
//	sessioncheck.go held streams whose session record vanished are closed
//	pollcheck.go    parked polls whose session vanished are answered 7:::1+0
//	dispatch.go     route messages from the route stream to connections and polls;
//	                broadcasts fanned out locally
//	rooms.go        the room index of the connections held here
//	liveness.go     this gateway's liveness key and, while its renewals are
//	                steady, the sessions of dead gateways; reaping expired
//	                sessions
//	utf8.go         invalid UTF-8 repaired in and out
//	metrics.go      the Prometheus collectors
//	config.go       Config and its defaults
//
// The streaming seam. A streaming connection is a streamConn (the
// session: its send queue with the slow-client bound, which goroutine owns
// its writes, heartbeats, namespaces, its end recorded once) on a conn, a
// four-method interface to its socket: TryWrite (never blocks), Flush,
// Write, Close. A websocket's conn is package internal/wsengine's Conn,
// the socket engine: the upgrade, epoll, reads in bursts, frames, writes
// that do not block; the streamConn is its Handler (Frame, ControlDue,
// ReadsEnded). An htmlfile stream's conn is htmlfileConn, which writes
// script elements to the ResponseWriter. The session logic is unit-tested
// on a fake conn (fakeconn_test.go, streamconn_test.go), the engine on
// real sockets in its own package.
//
// Goroutines: a websocket has no goroutine while idle: the engine's poller
// starts a reader when data comes, and a writer runs only while there is
// something to write that the socket did not take at once. An htmlfile
// connection's HTTP handler waits for its end; its writes run on writer
// goroutines like a websocket's. One subscriber goroutine dispatches route
// messages; it never blocks on a client: a full send queue closes that
// client with reason "overflow".
//
// Heartbeats: one wheel (sendHeartbeats) sends 2:: to every connection
// held here and ends a streaming client silent for the heartbeat timeout
// (reason "heartbeat_timeout"); an htmlfile client's POSTs, which may reach
// any gateway, count as its signs of life (heartbeat.go).
//
// Bad input: every rejection has a reason declared once in reject.go, is
// counted in realtime_gateway_rejected_total{reason} and logged; a client
// gets the protocol's error packet or the HTTP status its reason says.
// Sessions ended here are counted by bus.DisconnectReason.
package gateway
