// Command demo runs a whole single-machine cluster in one process: an
// embedded Redis-compatible server (miniredis, in memory), one gateway, and
// the echo and chat workers, with the chat page at http://localhost:8000/.
//
// It is a demo: nothing is persisted and there is one of everything. Point
// it at a real Redis with -redis to use the same processes' code against it.
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
	"github.com/realtime/realtime/pkg/gateway"
	"github.com/realtime/realtime/pkg/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demo: error:", err)
		os.Exit(1)
	}
}

// flags is the demo's command line; the gateway and the worker it runs
// take the library's defaults for everything else.
type flags struct {
	cmd                                       *cli.Command
	addr, redisURL, static, script, transport *string
}

func newFlags() *flags {
	cmd := cli.NewCommand("demo", "DEMO_", "Runs the whole cluster in one process: embedded Redis, a gateway, the echo and chat workers.")
	fs := cmd.Flags
	return &flags{
		cmd:       cmd,
		addr:      fs.String("addr", "localhost:8000", "HTTP listen address"),
		redisURL:  fs.String("redis", "", "a real Redis to use instead of the embedded one (e.g. redis://localhost:6379/0)"),
		static:    fs.String("static", "web/chat", "directory of the chat page"),
		script:    fs.String("client-script", "test/node_modules/socket.io-client/dist/socket.io.js", "socket.io.js of socket.io-client 0.9.16 (make client-script installs it)"),
		transport: fs.String("transports", strings.Join(gateway.DefaultTransports, ","), "enabled transports"),
	}
}

// gatewayConfig is the demo gateway's Config, serving the client script at
// script ("": none).
func (f *flags) gatewayConfig(script string, log *slog.Logger) gateway.Config {
	return gateway.Config{
		Node: "demo-gw", Transports: splitComma(*f.transport), StaticDir: *f.static, ClientScript: script, Logger: log,
	}
}

func run(args []string) error {
	f := newFlags()
	log, ok, err := f.cmd.Parse(args)
	if !ok {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Listen first: a port in use fails at once, before anything starts.
	l, err := listen(*f.addr)
	if err != nil {
		return err
	}
	defer l.Close()

	url := *f.redisURL
	if url == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		url = "redis://" + mr.Addr() + "/0"
		log.Warn("DEMO MODE: embedded in-memory Redis (miniredis), one gateway, echo and chat workers in one process; nothing is persisted. Use -redis for a real Redis.")
	}
	rdb, err := cli.Redis(ctx, url, 5*time.Second)
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
	g, err := gateway.New(rdb, f.gatewayConfig(script, log), nil)
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	w := worker.New(rdb, worker.Config{Name: "demo-worker", Logger: log})
	echo.Register(w)
	chat.Register(w)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(ctx) }()

	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	log.Info("listening", "addr", l.Addr().String())
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
