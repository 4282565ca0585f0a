package worker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/worker"
)

// TestMain gives the examples a Redis of their own, named by REDIS_URL as a
// deployment names it, so they run (not only compile) in the test suite.
func TestMain(m *testing.M) {
	srv, stop, err := testredis.StartBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("REDIS_URL", srv.URL())
	code := m.Run()
	stop()
	os.Exit(code)
}

// The README's worker (examples/worker-template is the same as a program of
// its own). Run returns nil when its context ends: a clean shutdown.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	w := worker.New(rdb, worker.Config{})
	ns := w.Namespace("") // the default namespace
	ns.OnConnect(func(ctx context.Context, s *worker.Socket) error {
		return s.Emit("welcome", s.ID())
	})
	ns.OnEvent("chat", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var text string
		if err := ev.Decode(&text); err != nil {
			return ev.Reject(map[string]string{"error": "chat takes a string"}) // answered at once, not retried
		}
		if err := s.BroadcastEmit("chat", text); err != nil { // all but the sender
			return err // retried, then dead-lettered (Config.MaxAttempts)
		}
		return ev.Ack("delivered") // the client's callback, if any, gets "delivered"
	})

	// A real worker runs until SIGTERM; this one stops after a moment.
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("stopped cleanly")
	// Output: stopped cleanly
}

// Acking or emitting the arguments the client sent: a single Args value is
// the whole argument list.
func ExampleEvent_Ack() {
	w := worker.New(redis.NewClient(&redis.Options{Addr: "unused:0"}), worker.Config{})
	w.Namespace("").OnEvent("echo", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		if ev.Acknowledgeable() {
			return ev.Ack(ev.Args) // the callback gets (1, "two") for emit('echo', 1, 'two', cb)
		}
		return s.Emit("echo", ev.Args) // the client's handler gets (1, "two")
	})
}
