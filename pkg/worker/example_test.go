package worker_test

import (
	"context"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/worker"
)

// The README's worker: it compiles here, so the README cannot rot.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	w := worker.New(rdb, worker.Config{})
	ns := w.Namespace("") // the default namespace
	ns.OnConnect(func(ctx context.Context, s *worker.Socket) error {
		return s.Emit("welcome", s.ID())
	})
	ns.OnEvent("chat", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var text string
		if err := ev.Decode(&text); err != nil {
			return err // retried, then dead-lettered; see -max-attempts
		}
		if err := s.BroadcastEmit("chat", text); err != nil { // all but the sender
			return err
		}
		return ev.Ack("delivered") // the client's callback, if any, gets "delivered"
	})
	log.Fatal(w.Run(context.Background()))
}
