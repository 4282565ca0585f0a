// Command worker runs the bundled apps (echo, chat) as Socket.IO workers.
//
// Every flag can also be set from the environment as WORKER_<FLAG>; -redis
// also reads REDIS_URL. Flags given on the command line win.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/realtime/realtime/examples/chat"
	"github.com/realtime/realtime/examples/echo"
	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/pkg/worker"
)

// apps are the bundled apps by name.
var apps = map[string]func(*worker.Worker){
	"echo": echo.Register,
	"chat": chat.Register,
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker: error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := cli.NewCommand("worker", "WORKER_", "Runs bundled Socket.IO apps as workers.")
	fs := cmd.Flags
	cluster := cmd.ClusterFlags()
	var (
		app         = fs.String("app", "echo", "bundled apps to run, comma-separated: "+strings.Join(appNames(), ", "))
		name        = fs.String("name", "", "this worker's id, unique among workers (default: generated)")
		adminAddr   = fs.String("admin-addr", "localhost:9101", "listen address for /metrics, /healthz and /readyz (empty: off)")
		timeout     = fs.Duration("handler-timeout", 10*time.Second, "deadline of each handler")
		maxAttempts = fs.Int("max-attempts", 5, "handling attempts before a signal goes to the dead-letter stream")
		leaseTTL    = fs.Duration("lease-ttl", 3*time.Second, "partition lease lifetime; a dead worker's partitions move after about this long")
	)
	log, ok, err := cmd.Parse(args)
	if !ok {
		return err
	}
	var registers []func(*worker.Worker)
	for _, a := range strings.Split(*app, ",") {
		r, ok := apps[strings.TrimSpace(a)]
		if !ok {
			return fmt.Errorf("unknown app %q (have %s)", a, strings.Join(appNames(), ", "))
		}
		registers = append(registers, r)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rdb, err := cluster.Connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := cli.NewRegistry()
	w := worker.New(rdb, worker.Config{
		Keys: cluster.Keys(), Name: *name, HandlerTimeout: *timeout,
		MaxAttempts: *maxAttempts, LeaseTTL: *leaseTTL, Logger: log, Metrics: worker.NewMetrics(reg),
	})
	for _, r := range registers {
		r(w)
	}
	if *adminAddr != "" {
		l, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			return fmt.Errorf("listen admin %s: %w", *adminAddr, err)
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: cli.AdminHandler(reg, w.CheckReady)}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		log.Info("admin listening", "addr", l.Addr().String())
	}
	return w.Run(ctx)
}

func appNames() []string {
	var out []string
	for n := range apps {
		out = append(out, n)
	}
	return out
}
