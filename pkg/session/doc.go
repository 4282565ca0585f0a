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
// A POST that commits packets records itself in the same transaction
// (PostWrite), and the gateway confirms the record once its answer was
// written whole (ConfirmPostWrite): TouchPost tells a POST retried by a load
// balancer (its gateway died before answering) from the client's next POST
// with the same "t" and body, so a retried POST is applied once (post.go).
//
// Streaming sessions (websocket, flashsocket, htmlfile) are held by one
// gateway; packets for them are appended to that gateway's route stream
// (bus.Keys.RouteStream, never created by a script: see bus.AppendRoute).
// Gateways renew liveness keys (Renew); the others end a dead gateway's
// streaming sessions (ReapGateways, guarded against taking a Redis stall
// for deaths), and a gateway started again under the same node id ends
// those of its previous run (EndOwnStreams).
//
// Every change of a session's state is one Lua script, so it is atomic. The
// scripts touch more than one session's hash slot (the namespace and room
// sets, the partition stream), so they need a standalone Redis or Sentinel;
// see docs/redis.md.
//
// # Scripts and the formats they write
//
// The scripts are Lua files in lua/, embedded with go:embed and assembled in
// scripts.go: each runs as a header rendered from Go, the definitions of
// lua/lib.lua (the helpers they share) it uses, then its own file, which
// documents its KEYS, ARGV and reply. Each name and format the scripts use
// has one owner:
//
//   - Key and channel names: bus.Keys. Every script runs for one
//     partition, whose deadlines set <P>{p}:deadlines is its KEYS[1]; a
//     script acting on a session gets the session's keys and its partition
//     stream as KEYS too (Store.sessionKeys builds them), all in the
//     partition's hash slot. Keys it learns from data (the sets of a
//     session it ends, the sessions of a broadcast or of the reaper, the
//     route stream of the gateway holding a stream) it names with key
//     macros, k_<name>(part), which scripts.go expands from
//     bus.KeyPatterns (a partition's keys under PP, the partition's key
//     prefix, lua/lib.lua). The Lua files spell no key.
//   - Route messages: bus.Route (decoded by bus.ParseRoute and
//     bus.EachRoute). Lua writes each kind in one route_* helper of
//     lua/lib.lua, and appends them to route streams as bus.AppendRoute
//     does (lib.lua's add_route_entry: id 0-*, NOMKSTREAM, MAXLEN ~
//     bus.RouteStreamMaxLen, field bus.RouteField, rendered into the header).
//   - Signals: bus.Signal.Pack and bus.ParseSignal. Lua packs them in
//     lib.lua's xadd, with the schema version and field from bus.
//   - The reply message on a worker's reply channel: bus.Reply (decoded by
//     bus.ParseReply). Lua writes it in lib.lua's reply_message.
//   - Mailbox defaults: DefaultMailboxBytes, DefaultMailboxDrainTimeout and
//     MailboxHardFactor, rendered into the header.
//
// The contract tests (scripts_test.go) run every script against a real
// Redis and check that what it appends and publishes decodes with pkg/bus
// into what it meant, and that the key macros name the keys bus.Keys
// names.
//
// Workers and emitters (pkg/worker) read sessions only through a Store:
// Handshake, AuthData, Namespaces, Rooms, Sessions, RoomSessions,
// CountNamespace and CountRoom.
package session
