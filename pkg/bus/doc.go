// Package bus is the message plane between gateways and workers.
//
// Client signals travel gateway -> worker on Redis Streams: P partition
// streams (default 16), a session's signals always on partition
// Partition(sid, P), so one worker at a time handles them in order. Route
// messages travel worker -> gateway on one route stream per gateway
// (routestream.go): packets for the sessions it holds, broadcasts, room
// changes, wake-ups of polls parked on it. A RouteReader reads it from the
// last entry read, so a dropped connection or a Redis restart with its data
// loses nothing, and reports any gap it cannot prove empty (dense ids, a
// stream only its gateway creates, a check of the last entry read).
//
//	client --5:1+::{...}--> gateway --XADD rt:{p}:sig--> worker
//	worker --XADD rt:gw:<node> (in the commit script)--> gateway --> client
//
// A worker reads its partitions through a Consumer (consumer.go), which
// keeps a session's order through Redis faults: a partition it takes is
// first drained of every entry pending in the group (XAUTOCLAIM from 0);
// after a failed read, commit or dead-lettering it re-reads its own
// pending entries (XREADGROUP with id 0) before new ones (">"), since
// Redis may have delivered entries whose reply was lost or acknowledged
// some whose commit seemed to fail; and it reads nothing while its leases
// may have lapsed. Delivery is at least once; commits apply their effects
// only with the XACK that acknowledges the entry, so effects apply once.
// docs/redis.md, "Consuming signals", says how.
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
//   - Route is a message on a gateway's route stream: String writes it,
//     ParseRoute and EachRoute (for batches) read it; AppendRoute appends
//     one, RouteReader reads the stream.
//   - Reply is a client's ack answer on a worker's reply channel: String
//     writes it, ParseReply reads it.
//
// The Lua scripts of pkg/session write signals, routes and replies too,
// and name keys from the patterns of KeyPatterns passed from Go; its
// contract tests decode what they write with the functions here.
package bus
