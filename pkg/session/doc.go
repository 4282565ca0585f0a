// Package session keeps Socket.IO sessions in Redis, so that any gateway can
// serve any request of any session.
//
// A session is born at the handshake (Create) in state "new", opens when its
// first transport request arrives (Open or Poll: the default namespace is
// connected and a connect signal is written), and ends exactly once (End, or
// the reaper when a deadline passes or the gateway holding its stream dies),
// writing one disconnect signal per connected namespace.
//
// Polling sessions keep outbound packets in a bounded mailbox. Each poll
// takes a batch and marks it in flight; the next poll acknowledges it (trims
// it) unless it carries the same cache-buster "t" as the poll that took it,
// which means the answer was lost and the load balancer retried: then the
// same batch is delivered again.
//
// Streaming sessions (websocket, flashsocket, htmlfile) are held by one
// gateway; packets for them are published on that gateway's channel.
//
// Every change of a session's state is one Lua script, so it is atomic. The
// scripts build key names from the prefix and touch more than one session's
// hash slot (the namespace and room sets, the partition stream), so they need
// a standalone Redis or Sentinel; see docs/redis.md.
package session
