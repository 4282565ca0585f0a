package worker_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/gateway"
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

// A worker serving the default namespace: the handlers of the README's
// worker (examples/worker-template, a program of its own, runs them as the
// app "myworker" in the namespace /myworker). Run returns nil when its
// context ends: a clean shutdown.
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
// the whole argument list, so the client gets each element as its own
// argument. The client here is a Socket.IO 0.9 client connected through a
// gateway, both started by this file's helpers (a real worker needs
// neither).
func ExampleEvent_Ack() {
	w := worker.New(exampleRedis(), worker.Config{})
	w.Namespace("").OnEvent("echo", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		if ev.Acknowledgeable() {
			return ev.Ack(ev.Args) // the callback gets (1, "two") for emit('echo', 1, 'two', cb)
		}
		return s.Emit("echo", ev.Args) // the client's handler gets (1, "two")
	})
	stop := runWorker(w)

	c := exampleClient()
	defer c.close()
	fmt.Println("callback:", c.emitAck("echo", 1, "two"))
	c.emit("echo", 1, "two")
	fmt.Println("handler:", c.nextEvent("echo"))
	fmt.Println("Run returned:", stop())
	// Output:
	// callback: [1,"two"]
	// handler: [1,"two"]
	// Run returned: <nil>
}

// Invalid client input is answered, not retried: Reject acks the client
// with the app's error value and the session's next event follows at once.
// An event no handler takes gets worker.UnhandledAck.
func ExampleEvent_Reject() {
	w := worker.New(exampleRedis(), worker.Config{})
	w.Namespace("").OnEvent("nick", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var nick string
		if err := ev.Decode(&nick); err != nil {
			return ev.Reject(map[string]string{"error": "nick takes a string"})
		}
		return ev.Ack("hello " + nick)
	})
	stop := runWorker(w)

	c := exampleClient()
	defer c.close()
	fmt.Println(c.emitAck("nick", 42))
	fmt.Println(c.emitAck("nick", "ada"))
	fmt.Println(c.emitAck("reverse", "abc"))
	fmt.Println("Run returned:", stop())
	// Output:
	// [{"error":"nick takes a string"}]
	// ["hello ada"]
	// [{"error":"unhandled"}]
	// Run returned: <nil>
}

// exampleRedis connects to the Redis TestMain started (REDIS_URL), emptied
// of the previous example's keys.
func exampleRedis() *redis.Client {
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		log.Fatal(err)
	}
	return rdb
}

// runWorker runs w until the returned stop is called; stop returns what
// Run returned.
func runWorker(w *worker.Worker) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// exampleClient starts a gateway on a loopback port, against REDIS_URL, and
// connects a websocket client through it; close ends all three.
func exampleClient() *client {
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := gateway.New(redis.NewClient(opt), gateway.Config{Node: "example-gw",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(g)
	cl, err := sioclient.Dial(ctx, "websocket", srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	return &client{Client: cl, close: func() {
		cl.Close()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	}}
}

// client wraps sioclient for the examples: each call waits at most 10 s and
// ends the program on an error.
type client struct {
	*sioclient.Client
	close func()
}

func (c *client) emitAck(name string, args ...any) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.EmitAck(ctx, "", name, args...)
	if err != nil {
		log.Fatal(err)
	}
	return string(got)
}

func (c *client) emit(name string, args ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Emit(ctx, "", name, args...); err != nil {
		log.Fatal(err)
	}
}

func (c *client) nextEvent(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.NextEvent(ctx, "", name)
	if err != nil {
		log.Fatal(err)
	}
	return string(got)
}
