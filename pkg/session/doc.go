// Package session keeps Socket.IO sessions in Redis, so that any gateway can
// serve any request of any session.
//
// A session is born at the handshake (Create) in state "new", opens when its
// first transport request arrives (Open or Poll: the default namespace is
// connected and a connect signal is written), and ends exactly once (End, or
// the reaper when a deadline passes or the gateway holding its stream dies),
// writing one disconnect signal per connected namespace.
//
// Polling sessions keep outbound packets in a mailbox bounded in bytes and
// time (Config.MailboxBytes, stored with each session so that every process
// delivering to it applies the same bounds). Each poll takes what waits, up
// to Config.PollBatchBytes, and marks it in flight; the gateway confirms the
// batch once its answer was written whole, or releases it if the write
// failed. A later poll with a new cache-buster "t" trims the batch (the
// client got it); one with the same "t" gets new packets if the batch was
// confirmed and the same batch again if it was not (the answer was lost and
// the load balancer retried): see Store.Poll.
//
// Streaming sessions (websocket, flashsocket, htmlfile) are held by one
// gateway; packets for them are published on that gateway's channel.
//
// Every change of a session's state is one Lua script, so it is atomic. The
// scripts build key names from the prefix and touch more than one session's
// hash slot (the namespace and room sets, the partition stream), so they need
// a standalone Redis or Sentinel; see docs/redis.md.
package session
