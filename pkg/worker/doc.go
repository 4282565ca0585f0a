// Package worker is the SDK for application logic: handlers for what
// Socket.IO 0.9 clients do, run by workers that share the signal partitions
// among themselves. It rebuilds django-realtime's signals for a cluster:
//
//	django-realtime                     package worker
//	socket_connected                    Namespace.OnConnect
//	socket_disconnected                 Namespace.OnDisconnect (with a reason)
//	socket_client_message               Namespace.OnMessage, Namespace.OnJSON
//	socket_client_event                 Namespace.OnAnyEvent
//	socket_client_event_by_type         Namespace.OnEvent(name, …)
//	Event.ack / acknowledgeable / …     Event.Ack, Event.Acknowledgeable, Event.Acknowledged
//	socket.send / emit                  Socket.Send, Socket.SendJSON, Socket.Emit, Socket.EmitAck
//	broadcast_send / broadcast_emit     Socket.BroadcastSend, Socket.BroadcastEmit
//	connected_sockets                   Emitter.Sockets (a cursor over the cluster)
//
// plus rooms (Join, Leave, Rooms, To), Disconnect, server-to-client acks and
// an Emitter that any Go process can use without consuming signals.
//
// Worker.OnBatch replaces the Namespace handlers with one BatchHandler that
// gets each partition's signals in runs, for a bridge that hands them to
// another process in one request (pkg/bridge, `worker -app http`); its
// effects and failures are committed and retried as handlers' are.
//
// A handler's actions through its Socket and Event are effects: they are
// committed to Redis in one script together with the acknowledgement of the
// signal that caused them. A worker that crashes mid-batch has committed
// nothing for the signals it had not acknowledged; the worker that takes its
// partitions over handles them again. So handlers run at least once per
// signal, and what clients receive happens exactly once. A handler's own
// external side effects can use Signal.ID to be idempotent.
//
// The signals of one partition are handled one at a time, in order; the
// partitions of one read concurrently, committed together in one script.
// A partition whose handlers take longer than SlowBatchWait is committed on
// its own when they finish: a slow handler holds back the signals of its
// partition only, while the worker goes on with its other partitions.
//
// The package reads sessions through session.Store and applies effects
// through its scripts; it names no Redis key itself (bus.Keys owns them,
// docs/redis.md documents them).
//
// A handler's error makes the worker run the signal again (after a short
// backoff; the session's later signals wait), then, after
// Config.MaxAttempts failures, move it to the dead-letter stream. Invalid
// client input is not worth retrying: answer it with Event.Reject (or wrap
// ErrRejected), which commits what the handler did and moves on at once.
// Messages and events no handler takes are counted "unhandled" in
// realtime_worker_signals_total, never "ok" (those of namespaces a worker
// of an app has no handlers for belong to another app: Config.App; they
// are counted "not_served" and left alone), and logged at most once per
// second per reason (no_namespace, no_handler; the next line says how many
// went unlogged); a client that asked for an ack on one gets UnhandledAck
// ({"error":"unhandled"}) at once, so its callback never waits forever.
// Rejected input is logged the same way (reason rejected).
//
// Rolling deploys: each worker publishes what it serves (its namespaces,
// event names, message kinds, from the handlers registered before Run) for
// the other workers of its app. One that reads a signal it does not serve
// while another live worker of its app does hands the signal's partition
// over to that worker instead of counting the signal unhandled: the signal
// and those after it stay pending, in order, for it (docs/redis.md,
// "Rolling deploys"; counted in realtime_worker_partition_handovers_total).
//
// A minimal worker (Run returns nil when ctx ends: a clean shutdown):
//
//	w := worker.New(rdb, worker.Config{})
//	chat := w.Namespace("")
//	chat.OnEvent("echo", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
//		if ev.Acknowledgeable() {
//			return ev.Ack(ev.Args) // the client's callback gets the arguments it sent
//		}
//		return s.Emit("echo", ev.Args)
//	})
//	if err := w.Run(ctx); err != nil {
//		log.Fatal(err)
//	}
//
// The package's examples run as tests against a real Redis (Example is the
// README's worker; ExampleEvent_Ack and ExampleEvent_Reject drive these
// handlers with a Socket.IO 0.9 client through a gateway), and
// examples/worker-template is a complete worker as a module of its own.
package worker
