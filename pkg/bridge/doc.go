// Package bridge hands a worker's signals to an application over HTTP, so
// any backend (Django, Rails, a Node or PHP app) handles Socket.IO events
// with the cluster's guarantees: ordered at-least-once delivery, retries,
// dead-letter, a disconnect for every connect, and effects committed
// exactly once. It runs as `worker -app http -http-endpoint URL`.
//
// The flow, per read of the worker's partitions:
//
//	partition stream ──► worker (OnBatch) ──► Bridge.Handle
//	                                             │ POST endpoint, signed
//	                                             ▼   {"v":1,"signals":[…]}
//	                                            app
//	                                             │ 200 {"v":1,"results":[{"effects":[…]}, …]}
//	                                             ▼
//	       effects + XACK of each answered signal, in one script (worker)
//
// One request carries up to Config.MaxBatch signals of one partition, in
// stream order (so each session's signals in the order its client sent
// them); requests for different partitions run concurrently, up to
// Config.Concurrency, and a slow one holds back its own partition only
// (worker.SlowBatchWait). The answer holds one Result per signal: effects
// (ack, emit, send, json, join, leave, disconnect, emit_ack, to the socket,
// another socket, a room or the namespace with an exception), "reject" for
// invalid client input (the client's ack gets the rejection, no retry), or
// "error" (retried). A request that fails (no answer within Config.Timeout,
// a status other than 2xx, an answer that is not version 1 or cannot be
// applied) fails its first signal: the worker retries it after its backoff
// and dead-letters it after its max attempts, as it does a Go handler's
// error. docs/bridge.md is the schema's reference, with examples that a
// test runs through the bridge.
//
// Every request is signed: X-Realtime-Timestamp (unix seconds) and
// X-Realtime-Signature "v1=" + hex HMAC-SHA256(secret, timestamp + "." +
// body). An app checks both with Verify (or its own code, as docs/bridge.md
// shows) and refuses a request outside its replay window.
package bridge
