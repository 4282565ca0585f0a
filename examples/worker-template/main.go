// Command myworker is a worker of your own for a realtime cluster: copy this
// folder, rename the module in go.mod, and add handlers. It reads REDIS_URL
// (default redis://localhost:6379/0) and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://localhost:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		log.Fatalf("REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	// An app of its own (consumer group "myworker") serving a namespace of
	// its own: it runs beside the cluster's other apps, each getting every
	// signal and answering those of its namespaces. Browsers connect with
	// io.connect("http://<gateway>/myworker").
	w := worker.New(rdb, worker.Config{App: "myworker"})
	ns := w.Namespace("/myworker")
	ns.OnConnect(func(ctx context.Context, s *worker.Socket) error {
		return s.Emit("welcome", s.ID())
	})
	ns.OnEvent("chat", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var text string
		if err := ev.Decode(&text); err != nil {
			// Bad input from the client: answer it at once, no retry.
			return ev.Reject(map[string]string{"error": "chat takes a string"})
		}
		if err := s.BroadcastEmit("chat", text); err != nil { // all but the sender
			return err // retried, then dead-lettered (worker.Config.MaxAttempts)
		}
		return ev.Ack("delivered") // the client's callback, if any, gets "delivered"
	})
	ns.OnEvent("echo", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		return ev.Ack(ev.Args) // the callback gets the arguments the client sent
	})

	// Run returns nil when ctx ends (a clean shutdown).
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
