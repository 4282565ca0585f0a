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
package bus
