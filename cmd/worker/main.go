// Command worker runs the bundled apps (echo, chat) as Socket.IO workers,
// or, with -app http, bridges every signal to an HTTP app (pkg/bridge,
// docs/bridge.md).
//
// Every flag can also be set from the environment as WORKER_<FLAG>; -redis
// also reads REDIS_URL, -http-secret also REALTIME_SECRET. Flags given on
// the command line win.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/realtime/realtime/examples/chat"
	"github.com/realtime/realtime/examples/echo"
	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// httpApp is the -app name of the HTTP bridge, which runs alone.
const httpApp = "http"

// apps are the bundled apps by name.
var apps = map[string]func(*worker.Worker){
	"echo": echo.Register,
	"chat": chat.Register,
}

func main() {
	f := newFlags()
	if err := f.run(os.Args[1:]); err != nil {
		f.cmd.Exit(err)
	}
}

// flags is the worker's command line. Every default that fills a
// worker.Config field is the library's named default.
type flags struct {
	cmd                *cli.Command
	cluster            *cli.Cluster
	app, group, name   *string
	adminAddr          *string
	timeout, leaseTTL  *time.Duration
	maxAttempts        *int
	maxRooms, maxRoomB *int
	pprof              *bool
	retryBackoff       *time.Duration
	maxRetryBackoff    *time.Duration

	// -app http
	httpEndpoint, httpSecret *string
	httpTimeout              *time.Duration
	httpConcurrency          *int
	httpMaxBatch             *int
	httpNamespaces           *string
}

func newFlags() *flags {
	cmd := cli.NewCommand("worker", "WORKER_", "Runs bundled Socket.IO apps as workers.")
	fs := cmd.Flags
	return &flags{
		cmd:          cmd,
		cluster:      cmd.ClusterFlags(),
		app:          fs.String("app", "echo", "bundled apps to run, comma-separated: "+strings.Join(appNames(), ", ")+"; or "+httpApp+" alone: the HTTP bridge"),
		group:        fs.String("group", "", "consumer group of this app's workers; apps serving different namespaces need different groups, replicas of one app share one (default: the -app names, sorted, joined with +)"),
		name:         fs.String("name", "", "this worker's id, unique among workers (default: generated)"),
		adminAddr:    fs.String("admin-addr", cli.DefaultWorkerAdminAddr, "listen address for /metrics, /healthz and /readyz (empty: off)"),
		pprof:        fs.Bool("pprof", cli.DefaultPprof, cli.PprofUsage),
		timeout:      fs.Duration("handler-timeout", worker.DefaultHandlerTimeout, "deadline of each handler"),
		maxAttempts:  fs.Int("max-attempts", worker.DefaultMaxAttempts, "handling attempts before a signal goes to the dead-letter stream"),
		leaseTTL:     fs.Duration("lease-ttl", worker.DefaultLeaseTTL, "partition lease lifetime; a dead worker's partitions move after about this long"),
		maxRooms:     fs.Int("max-rooms", session.DefaultMaxRooms, "rooms one session may be in, over all its namespaces; a join beyond them fails (worker.ErrTooManyRooms)"),
		maxRoomB:     fs.Int("max-room-bytes", session.DefaultMaxRoomBytes, "longest room name in bytes; a join of a longer one fails (worker.ErrRoomNameTooLong)"),
		retryBackoff: fs.Duration("retry-backoff", bus.DefaultRetryBackoff, "pause before a failed signal is handled again"),
		maxRetryBackoff: fs.Duration("max-retry-backoff", 0,
			"when above -retry-backoff, the pause doubles with each failed attempt of a signal up to this (0: fixed pause)"),
		httpEndpoint: fs.String("http-endpoint", "", "-app http: the URL the bridge POSTs signals to"),
		httpSecret: fs.String("http-secret", "",
			"-app http: the secret that signs requests (HMAC-SHA256; required; also from REALTIME_SECRET)"),
		httpTimeout:     fs.Duration("http-timeout", bridge.DefaultTimeout, "-app http: deadline of each request, answer included"),
		httpConcurrency: fs.Int("http-concurrency", bridge.DefaultConcurrency, "-app http: requests in flight at once (each of one partition)"),
		httpMaxBatch:    fs.Int("http-max-batch", bridge.DefaultMaxBatch, "-app http: most signals per request"),
		httpNamespaces: fs.String("http-namespaces", "",
			"-app http: comma-separated namespaces the app serves, / for the default one (e.g. /,/chat); the others are left to other apps (default: every namespace: the bridge is then the cluster's only app)"),
	}
}

// appGroup is the consumer group of the apps: -group, else the app names
// sorted and joined with "+" ("chat+echo").
func (f *flags) appGroup() (string, error) {
	group := *f.group
	if group == "" {
		var names []string
		for _, a := range strings.Split(*f.app, ",") {
			names = append(names, strings.TrimSpace(a))
		}
		slices.Sort(names)
		group = strings.Join(slices.Compact(names), "+")
	}
	if err := bus.ValidGroup(group); err != nil {
		return "", fmt.Errorf("-group: %w", err)
	}
	return group, nil
}

// config is the worker.Config the parsed flags ask for (the group checked
// by appGroup).
func (f *flags) config(log *slog.Logger, m *worker.Metrics) worker.Config {
	group, _ := f.appGroup()
	return worker.Config{
		Keys: f.cluster.Keys(), Name: *f.name, App: group, HandlerTimeout: *f.timeout,
		MaxAttempts: *f.maxAttempts, LeaseTTL: *f.leaseTTL, Logger: log, Metrics: m,
		MaxRooms: *f.maxRooms, MaxRoomBytes: *f.maxRoomB,
		RetryBackoff: *f.retryBackoff, MaxRetryBackoff: *f.maxRetryBackoff,
	}
}

func (f *flags) run(args []string) error {
	log, ok, err := f.cmd.Parse(args)
	if !ok {
		return err
	}
	var registers []func(*worker.Worker)
	var httpBridge bool
	for _, a := range strings.Split(*f.app, ",") {
		if strings.TrimSpace(a) == httpApp {
			httpBridge = true
			continue
		}
		r, ok := apps[strings.TrimSpace(a)]
		if !ok {
			return fmt.Errorf("unknown app %q (have %s)", a, strings.Join(appNames(), ", "))
		}
		registers = append(registers, r)
	}
	if _, err := f.appGroup(); err != nil {
		return err
	}
	if httpBridge && len(registers) > 0 {
		return fmt.Errorf("-app %s runs alone in its process (other apps run as workers of their own)", httpApp)
	}
	if !httpBridge && *f.httpEndpoint != "" {
		return fmt.Errorf("-http-endpoint is for -app %s; -app %s would ignore it", httpApp, *f.app)
	}
	namespaces, err := parseNamespaces(*f.httpNamespaces)
	if err != nil {
		return fmt.Errorf("-http-namespaces: %w", err)
	}
	reg := cli.NewRegistry()
	var b *bridge.Bridge
	if httpBridge {
		if *f.httpSecret == "" {
			*f.httpSecret = os.Getenv("REALTIME_SECRET")
		}
		b, err = bridge.New(bridge.Config{
			Endpoint: *f.httpEndpoint, Secret: []byte(*f.httpSecret), Timeout: *f.httpTimeout,
			Concurrency: *f.httpConcurrency, MaxBatch: *f.httpMaxBatch, Logger: log, Metrics: bridge.NewMetrics(reg),
			Namespaces: namespaces,
		})
		if err != nil {
			return fmt.Errorf("-app %s: %w", httpApp, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rdb, err := f.cluster.Connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	w := worker.New(rdb, f.config(log, worker.NewMetrics(reg)))
	for _, r := range registers {
		r(w)
	}
	if b != nil {
		b.Register(w)
		served := "every namespace"
		if namespaces != nil {
			served = *f.httpNamespaces
		}
		log.Info("bridging signals over HTTP", "endpoint", *f.httpEndpoint, "namespaces", served)
	}
	if *f.adminAddr != "" {
		l, err := net.Listen("tcp", *f.adminAddr)
		if err != nil {
			return fmt.Errorf("listen admin %s: %w", *f.adminAddr, err)
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: cli.AdminHandler(reg, w.CheckReady, w.WaitingNote, *f.pprof)}
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

// parseNamespaces parses -http-namespaces: comma-separated namespaces, "/"
// naming the default one (""), others starting with '/' (Socket.IO 0.9's
// endpoints); "" means every namespace (nil).
func parseNamespaces(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		switch {
		case ns == "/":
			ns = ""
		case !strings.HasPrefix(ns, "/") || strings.ContainsAny(ns, ":, "):
			return nil, fmt.Errorf("%q is not a namespace (/ for the default one, else /name)", ns)
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out, nil
}
