// Command myworker is a worker of your own for a realtime cluster: copy this
// folder, rename the module in go.mod, and add handlers. It reads REDIS_URL
// (default redis://localhost:6379/0) and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	reg := prometheus.NewRegistry()
	w := worker.New(rdb, worker.Config{App: "myworker", Metrics: worker.NewMetrics(reg)})
	ns := w.Namespace("/myworker")
	ns.OnConnect(func(ctx context.Context, s *worker.Socket) error {
		return s.Emit("welcome", s.ID())
	})
	ns.OnEvent("chat", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var text string
		if err := ev.Decode(&text); err != nil || text == "" {
			// Bad input from the client (Decode leaves a missing argument
			// as it was: ""): answer it at once, no retry.
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

	// /metrics, /healthz and /readyz for Prometheus and probes, on
	// ADMIN_ADDR (e.g. 127.0.0.1:8120) if set: not for clients.
	if addr := os.Getenv("ADMIN_ADDR"); addr != "" {
		srv := &http.Server{Addr: addr, Handler: w.AdminHandler(reg), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				log.Print(err)
			}
		}()
		defer srv.Close()
	}

	// Run returns nil when ctx ends (a clean shutdown).
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
