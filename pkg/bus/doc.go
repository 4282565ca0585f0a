// Package bus is the message plane between gateways and workers.
//
// Client signals travel gateway -> worker on Redis Streams: P partition
// streams (default 16), a session's signals always on partition
// Partition(sid, P), so one worker at a time handles them in order. Packets
// travel worker -> gateway on Redis pub/sub: one channel per gateway for
// sessions it holds (and for waking polls parked on it), one broadcast
// channel that every gateway subscribes to.
//
//	client --5:1+::{...}--> gateway --XADD rt:sig:{p}--> worker
//	worker --PUBLISH rt:gw:<node> / rt:bcast--> gateway --> client
//
// A gateway writes signals through a Committer: batches of Writes (an XAdd,
// and the session scripts that go with it), each batch one MULTI/EXEC,
// the writes of one session committed in the order they were queued.
//
// The entry schema and the key layout are documented in docs/redis.md, so
// that workers in other languages can read and write them.
//
// This package owns the cluster's names and wire formats:
//
//   - Keys names every Redis key and pub/sub channel, each from one pattern
//     of KeyPatterns; a test checks the key tables of docs/redis.md
//     against it.
//   - Signal is a stream entry: Pack writes it, ParseSignal reads it.
//   - Route is a message on a gateway or the broadcast channel: String
//     writes it, ParseRoute and EachRoute (for batches) read it.
//   - Reply is a client's ack answer on a worker's reply channel: String
//     writes it, ParseReply reads it.
//
// The Lua scripts of pkg/session write signals, routes and replies too,
// and name keys from the patterns of KeyPatterns passed from Go; its
// contract tests decode what they write with the functions here.
package bus
