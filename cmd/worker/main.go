// Command worker runs the bundled apps (echo, chat) as Socket.IO workers.
//
// Every flag can also be set from the environment as WORKER_<FLAG>; -redis
// also reads REDIS_URL. Flags given on the command line win.
package main

import (
	"context"
	"fmt"
	"log/slog"
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

// flags is the worker's command line. Every default that fills a
// worker.Config field is the library's named default.
type flags struct {
	cmd                  *cli.Command
	cluster              *cli.Cluster
	app, name, adminAddr *string
	timeout, leaseTTL    *time.Duration
	maxAttempts          *int
}

func newFlags() *flags {
	cmd := cli.NewCommand("worker", "WORKER_", "Runs bundled Socket.IO apps as workers.")
	fs := cmd.Flags
	return &flags{
		cmd:         cmd,
		cluster:     cmd.ClusterFlags(),
		app:         fs.String("app", "echo", "bundled apps to run, comma-separated: "+strings.Join(appNames(), ", ")),
		name:        fs.String("name", "", "this worker's id, unique among workers (default: generated)"),
		adminAddr:   fs.String("admin-addr", cli.DefaultWorkerAdminAddr, "listen address for /metrics, /healthz and /readyz (empty: off)"),
		timeout:     fs.Duration("handler-timeout", worker.DefaultHandlerTimeout, "deadline of each handler"),
		maxAttempts: fs.Int("max-attempts", worker.DefaultMaxAttempts, "handling attempts before a signal goes to the dead-letter stream"),
		leaseTTL:    fs.Duration("lease-ttl", worker.DefaultLeaseTTL, "partition lease lifetime; a dead worker's partitions move after about this long"),
	}
}

// config is the worker.Config the parsed flags ask for.
func (f *flags) config(log *slog.Logger, m *worker.Metrics) worker.Config {
	return worker.Config{
		Keys: f.cluster.Keys(), Name: *f.name, HandlerTimeout: *f.timeout,
		MaxAttempts: *f.maxAttempts, LeaseTTL: *f.leaseTTL, Logger: log, Metrics: m,
	}
}

func run(args []string) error {
	f := newFlags()
	log, ok, err := f.cmd.Parse(args)
	if !ok {
		return err
	}
	var registers []func(*worker.Worker)
	for _, a := range strings.Split(*f.app, ",") {
		r, ok := apps[strings.TrimSpace(a)]
		if !ok {
			return fmt.Errorf("unknown app %q (have %s)", a, strings.Join(appNames(), ", "))
		}
		registers = append(registers, r)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rdb, err := f.cluster.Connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := cli.NewRegistry()
	w := worker.New(rdb, f.config(log, worker.NewMetrics(reg)))
	for _, r := range registers {
		r(w)
	}
	if *f.adminAddr != "" {
		l, err := net.Listen("tcp", *f.adminAddr)
		if err != nil {
			return fmt.Errorf("listen admin %s: %w", *f.adminAddr, err)
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
