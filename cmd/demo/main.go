// Command demo runs a whole single-machine cluster in one process: an
// embedded Redis-compatible server (miniredis, in memory), one gateway, and
// the echo and chat workers, with the chat page at http://localhost:8000/.
//
// It is a demo: nothing is persisted and there is one of everything. Point
// it at a real Redis with -redis to use the same processes' code against it.
//
// With -http-endpoint its worker is an HTTP bridge (docs/bridge.md) to
// that app instead of the echo and chat workers, and with -api-addr it
// serves the server HTTP API (docs/api.yaml): the development loop of an
// app in another language (python/django-realtime's runrealtime command).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/realtime/realtime/examples/chat"
	"github.com/realtime/realtime/examples/echo"
	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/pkg/api"
	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/gateway"
	"github.com/realtime/realtime/pkg/worker"
)

func main() {
	f := newFlags()
	if err := f.run(os.Args[1:]); err != nil {
		f.cmd.Exit(err)
	}
}

// flags is the demo's command line; the gateway and the worker it runs
// take the library's defaults for everything else.
type flags struct {
	cmd                                       *cli.Command
	addr, redisURL, static, script, transport *string
	redisMode                                 *string
	httpEndpoint, httpSecret, apiAddr         *string
}

func newFlags() *flags {
	cmd := cli.NewCommand("demo", "DEMO_", "Runs the whole cluster in one process: embedded Redis, a gateway, the echo and chat workers.")
	fs := cmd.Flags
	return &flags{
		cmd:       cmd,
		addr:      fs.String("addr", "localhost:8000", "HTTP listen address"),
		redisURL:  fs.String("redis", "", "a real Redis to use instead of the embedded one (e.g. redis://localhost:6379/0): one no cluster uses (the demo's processes have fixed names)"),
		redisMode: fs.String("redis-mode", string(cli.DefaultRedisMode), cli.RedisModeUsage+" (with -redis)"),
		static:    fs.String("static", "web/chat", "directory of the chat page"),
		script:    fs.String("client-script", "test/node_modules/socket.io-client/dist/socket.io.js", "socket.io.js of socket.io-client 0.9.16 (make client-script installs it)"),
		transport: fs.String("transports", strings.Join(gateway.DefaultTransports, ","), "enabled transports"),
		httpEndpoint: fs.String("http-endpoint", "",
			"bridge every signal to this HTTP app (docs/bridge.md) instead of running the echo and chat workers (empty: off)"),
		httpSecret: fs.String("http-secret", "", "with -http-endpoint: the secret that signs each request (default: $REALTIME_SECRET)"),
		apiAddr: fs.String("api-addr", "",
			"listen address of the server HTTP API (docs/api.yaml), e.g. 127.0.0.1:8200; its key is $REALTIME_API_KEY, and without one only a loopback address is allowed (empty: off)"),
	}
}

// gatewayConfig is the demo gateway's Config, serving the client script at
// script ("": none).
func (f *flags) gatewayConfig(script string, log *slog.Logger) gateway.Config {
	return gateway.Config{
		Node: "demo-gw", Transports: splitComma(*f.transport), StaticDir: *f.static, ClientScript: script, Logger: log,
	}
}

func (f *flags) run(args []string) error {
	log, ok, err := f.cmd.Parse(args)
	if !ok {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var b *bridge.Bridge
	if *f.httpEndpoint != "" {
		if *f.httpSecret == "" {
			*f.httpSecret = os.Getenv("REALTIME_SECRET")
		}
		b, err = bridge.New(bridge.Config{Endpoint: *f.httpEndpoint, Secret: []byte(*f.httpSecret), Logger: log})
		if err != nil {
			return fmt.Errorf("-http-endpoint: %w", err)
		}
	}
	apiCfg := api.Config{Key: os.Getenv("REALTIME_API_KEY"), Logger: log}
	if *f.apiAddr != "" {
		if err := api.CheckListen(*f.apiAddr, apiCfg.Key); err != nil {
			return err
		}
	}
	// Listen first: a port in use fails at once, before anything starts.
	l, err := listen(*f.addr)
	if err != nil {
		return err
	}
	defer l.Close()
	var apil net.Listener
	if *f.apiAddr != "" {
		if apil, err = net.Listen("tcp", *f.apiAddr); err != nil {
			return fmt.Errorf("listen api %s: %w", *f.apiAddr, err)
		}
		defer apil.Close()
	}

	url, mode := *f.redisURL, cli.RedisMode(*f.redisMode)
	if url == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		url, mode = "redis://"+mr.Addr()+"/0", cli.RedisStandalone
		workers := "echo and chat workers"
		if *f.httpEndpoint != "" {
			workers = "a worker bridging to " + *f.httpEndpoint
		}
		log.Warn("DEMO MODE: embedded in-memory Redis (miniredis), one gateway, " + workers + " in one process; nothing is persisted. Use -redis for a real Redis.")
	}
	rdb, err := cli.Redis(ctx, url, mode, 5*time.Second)
	if err != nil {
		return err
	}
	defer rdb.Close()

	script := *f.script
	if _, err := os.Stat(script); err != nil {
		log.Warn("client script missing: the page will say so; run `make client-script`", "path", script)
		script = ""
	} else if abs, err := filepath.Abs(script); err == nil {
		script = abs
	}
	gcfg := f.gatewayConfig(script, log)
	if *f.redisURL == "" {
		// The embedded Redis has this one gateway: no other gateway's
		// route table to wait for before it serves (Store.Alive).
		gcfg.RouteRefresh = 100 * time.Millisecond
	}
	g, err := gateway.New(rdb, gcfg, nil)
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	w := worker.New(rdb, worker.Config{Name: "demo-worker", Logger: log})
	if b != nil {
		b.Register(w)
		log.Info("bridging signals over HTTP", "endpoint", *f.httpEndpoint)
	} else {
		echo.Register(w)
		chat.Register(w)
	}
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()

	srv := g.HTTPServer()
	go func() { _ = srv.Serve(l) }()
	log.Info("listening", "addr", l.Addr().String())
	var apiSrv *http.Server
	if apil != nil {
		apiSrv = api.New(worker.NewEmitter(rdb, worker.EmitterConfig{Node: "api-demo"}), apiCfg, nil).HTTPServer()
		go func() { _ = apiSrv.Serve(apil) }()
		log.Info("api listening", "addr", apil.Addr().String())
	}
	fmt.Fprintf(os.Stderr, "\n  chat demo: http://%s/\n\n", displayAddr(l.Addr()))

	select {
	case <-ctx.Done():
	case err := <-werr:
		if err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.Drain(sctx)
	_ = srv.Shutdown(sctx)
	if apiSrv != nil {
		_ = apiSrv.Shutdown(sctx)
	}
	_ = g.Shutdown(sctx)
	return nil
}

// listen listens on addr; when the port is taken, the error says how to
// pick another.
func listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen %s: %w: another process uses this port; pick another with -addr (e.g. -addr localhost:8001), or with make: DEMO_ADDR=localhost:8001 make demo", addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

func displayAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if host == "127.0.0.1" || host == "::1" || host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
