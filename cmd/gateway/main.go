// Command gateway serves Socket.IO 0.9 clients and keeps their sessions in
// Redis; run several behind any round-robin load balancer.
//
// Every flag can also be set from the environment as GATEWAY_<FLAG> (e.g.
// GATEWAY_HEARTBEAT_TIMEOUT=60s); -redis also reads REDIS_URL, and -api-key
// also reads REALTIME_API_KEY (so the key stays off command lines), and
// -session-binding takes its secret from REALTIME_SESSION_BINDING_SECRET
// only. Flags given on the command line win.
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
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/pkg/api"
	"github.com/realtime/realtime/pkg/gateway"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// BindingSecretEnv is the environment variable that holds the secret of
// -session-binding (gateway.Config.SessionBindingSecret): the same on every
// gateway, kept off command lines.
const BindingSecretEnv = "REALTIME_SESSION_BINDING_SECRET"

// APIKeyEnv is the environment variable -api-key falls back to after
// GATEWAY_API_KEY: the name the Django package reads its key from too.
const APIKeyEnv = "REALTIME_API_KEY"

func main() {
	f := newFlags()
	if err := f.run(os.Args[1:]); err != nil {
		f.cmd.Exit(err)
	}
}

// flags is the gateway's command line. Every default that fills a
// gateway.Config field is the library's named default.
type flags struct {
	cmd     *cli.Command
	cluster *cli.Cluster

	addr, adminAddr, nodeID, flashAddr        *string
	transports, origins, clientScript, static *string
	hsHeaders                                 *string
	maxHSBytes                                *int
	hbInterval, hbTimeout, closeTimeout       *time.Duration
	pollDuration, mailboxDrain, hsHold        *time.Duration
	authTimeout, livenessTTL, routeRefresh    *time.Duration
	redisWait                                 *time.Duration
	drainDelay, drainTimeout                  *time.Duration
	bodyTimeout, idleTimeout                  *time.Duration
	maxPacket, mailboxBytes, pollBatch        *int
	maxMailbox, sendQueue, maxHSQueue         *int
	maxConns, sendQBytes, maxBad, maxNS       *int
	maxBody                                   *int64
	maxHSRate                                 *float64
	authorize, authFailOpen, pprof, binding   *bool
	apiAddr, apiKey                           *string
	apiMaxBody                                *int64
	apiReadTimeout                            *time.Duration
}

func newFlags() *flags {
	cmd := cli.NewCommand("gateway", "GATEWAY_", "Serves Socket.IO 0.9 clients; sessions live in Redis.")
	fs := cmd.Flags
	return &flags{
		cmd:          cmd,
		cluster:      cmd.ClusterFlags(),
		addr:         fs.String("addr", "localhost:8000", "HTTP listen address for Socket.IO clients"),
		adminAddr:    fs.String("admin-addr", cli.DefaultGatewayAdminAddr, "listen address for /metrics, /healthz and /readyz (empty: off)"),
		pprof:        fs.Bool("pprof", cli.DefaultPprof, cli.PprofUsage),
		nodeID:       fs.String("node-id", "", "this gateway's id, unique in the cluster (default: generated)"),
		hbInterval:   fs.Duration("heartbeat-interval", gateway.DefaultHeartbeatInterval, "how often streaming transports send a heartbeat"),
		hbTimeout:    fs.Duration("heartbeat-timeout", gateway.DefaultHeartbeatTimeout, "heartbeat timeout told to clients; silent streaming clients are dropped after it"),
		closeTimeout: fs.Duration("close-timeout", gateway.DefaultCloseTimeout, "close timeout told to clients; a polling session without contact for this long ends"),
		pollDuration: fs.Duration("polling-duration", gateway.DefaultPollingDuration, "how long a poll is held before the noop answer"),
		transports:   fs.String("transports", strings.Join(gateway.DefaultTransports, ","), "enabled transports in preference order (websocket,flashsocket,htmlfile,xhr-polling,jsonp-polling)"),
		origins:      fs.String("origins", strings.Join(gateway.DefaultOrigins, ","), "allowed origins, comma-separated host:port, host:* or *:port (*:* allows all, also requests with no Origin or Referer)"),
		hsHeaders:    fs.String("handshake-headers", strings.Join(gateway.DefaultHandshakeHeaders, ","), "request headers a session keeps of its handshake for the authorization hook and apps, comma-separated (the others are not kept)"),
		maxHSBytes:   fs.Int("max-handshake-bytes", gateway.DefaultMaxHandshakeBytes, "most bytes of handshake data (JSON) a session keeps; over it kept headers are dropped, largest first, and a handshake whose URL alone is over it gets 414"),
		flashAddr:    fs.String("flash-policy-addr", "", "listen address of the Flash policy-file server, e.g. :10843 (empty: off)"),
		maxPacket:    fs.Int("max-packet-bytes", gateway.DefaultMaxPacketBytes, "largest packet accepted from a client"),
		maxBody:      fs.Int64("max-body-bytes", gateway.DefaultMaxBodyBytes, "largest POST body accepted"),
		bodyTimeout:  fs.Duration("body-timeout", gateway.DefaultBodyTimeout, "time to send a request body after its headers; a slower body is cut off and its connection closed"),
		idleTimeout:  fs.Duration("idle-timeout", gateway.DefaultIdleTimeout, "a keep-alive connection without a request for this long is closed (parked polls, htmlfile streams and websockets are not idle)"),
		mailboxBytes: fs.Int("mailbox-bytes", session.DefaultMailboxBytes, "bytes a polling session's mailbox may hold while its client does not drain it; beyond them for -mailbox-drain-timeout, or beyond 4 times them, the session ends (overflow)"),
		mailboxDrain: fs.Duration("mailbox-drain-timeout", session.DefaultMailboxDrainTimeout, "how long a mailbox over -mailbox-bytes may keep its oldest packet waiting"),
		pollBatch:    fs.Int("poll-batch-bytes", session.DefaultPollBatchBytes, "most bytes of packets one poll answer carries"),
		maxMailbox:   fs.Int("max-mailbox", 0, "deprecated and ignored: mailboxes are bounded in bytes (-mailbox-bytes)"),
		sendQueue:    fs.Int("send-queue", gateway.DefaultSendQueue, "packets queued per streaming client before it is dropped as too slow"),
		sendQBytes:   fs.Int("send-queue-bytes", gateway.DefaultSendQueueBytes, "bytes queued or being written per streaming client before it is dropped as too slow (one packet always fits)"),
		clientScript: fs.String("client-script", "", "path of socket.io.js (socket.io-client 0.9.16) served at /socket.io/socket.io.js; the socket.io.min.js next to it is served at /socket.io/socket.io.min.js"),
		static:       fs.String("static", "", "directory served at / (e.g. the chat page)"),
		maxHSRate:    fs.Float64("max-handshake-rate", gateway.DefaultMaxHandshakeRate, "handshakes per second (bursts of as many); a handshake over it is held until admitted, at most -handshake-hold (0: no limit)"),
		maxHSQueue:   fs.Int("max-handshake-queue", gateway.DefaultMaxHandshakeQueue, "handshakes held at once (waiting for the rate or for Redis); beyond it they get 503 at once"),
		hsHold:       fs.Duration("handshake-hold", gateway.DefaultHandshakeHold, "longest a handshake is held (waiting for the rate, retrying Redis) before 503; keep it below the client's 10s connect timeout"),
		maxBad:       fs.Int("max-bad-packets", gateway.DefaultMaxBadPackets, "rejected frames and packets in a row a websocket client may send: the next rejected one disconnects it (reason bad_input)"),
		maxNS:        fs.Int("max-namespaces", gateway.DefaultMaxNamespaces, "namespaces one session may connect besides the default one; a connect beyond them gets 7::/ns:2"),
		maxConns:     fs.Int("max-connections", gateway.DefaultMaxConnections, "websockets held plus polls parked beyond which handshakes and upgrades get 503 at once (0: no limit)"),
		authorize:    fs.Bool("authorize", false, "ask the workers' OnAuthorize hook to allow each handshake"),
		authTimeout:  fs.Duration("authorize-timeout", gateway.DefaultAuthorizeTimeout, "how long a handshake waits for the authorization answer"),
		authFailOpen: fs.Bool("authorize-fail-open", false, "admit handshakes when authorization gets no answer in time (default: refuse them)"),
		livenessTTL:  fs.Duration("liveness-ttl", gateway.DefaultAliveTTL, "lifetime of this gateway's liveness key, renewed every quarter of it; after a crash, other gateways end its websocket sessions within this plus a half"),
		routeRefresh: fs.Duration("route-refresh", session.DefaultRouteRefresh, "how often this gateway reads the cluster's gateways into its route table; a gateway new to the cluster waits three times this before it serves, so that every other gateway knows of it (the same on every gateway)"),
		redisWait:    fs.Duration("redis-wait", gateway.RedisWait, "how long a polling POST waits for Redis before it is answered 503 (its client then starts a new session), and the Redis client's read and write timeout: set it above your Redis failover time"),
		drainDelay:   fs.Duration("drain-delay", 5*time.Second, "on SIGTERM, how long to stay up but unready (/readyz 503) so load balancers stop sending traffic"),
		drainTimeout: fs.Duration("drain-timeout", 30*time.Second, "after the delay, the time to close websockets (paced over half of it) and exit"),
		binding:      fs.Bool("session-binding", false, "bind each session to its browser with an HttpOnly cookie that every transport request must carry (needs the secret in "+BindingSecretEnv+"; pages from the gateways' own origin only)"),
		apiAddr:      fs.String("api-addr", "", "listen address of the server HTTP API (docs/api.yaml), e.g. 127.0.0.1:8200 (empty: off)"),
		apiKey:       fs.String("api-key", "", "bearer key of the server HTTP API (also read from "+APIKeyEnv+"); without one the API only starts on a loopback address"),
		apiMaxBody:   fs.Int64("api-max-body-bytes", api.DefaultMaxBodyBytes, "largest server HTTP API request body; a larger one gets 413"),
		apiReadTimeout: fs.Duration("api-read-timeout", api.DefaultReadTimeout,
			"time to read a whole server HTTP API request, headers and body"),
	}
}

// apiConfig is the api.Config the parsed flags ask for; the key falls back
// to $REALTIME_API_KEY.
func (f *flags) apiConfig(log *slog.Logger) api.Config {
	key := *f.apiKey
	if key == "" {
		key = os.Getenv(APIKeyEnv)
	}
	return api.Config{Key: key, MaxBodyBytes: *f.apiMaxBody, ReadTimeout: *f.apiReadTimeout, Logger: log}
}

// config is the gateway.Config the parsed flags ask for.
func (f *flags) config(log *slog.Logger) gateway.Config {
	return gateway.Config{
		Node: *f.nodeID, Keys: f.cluster.Keys(),
		HeartbeatInterval: *f.hbInterval, HeartbeatTimeout: *f.hbTimeout,
		CloseTimeout: *f.closeTimeout, PollingDuration: *f.pollDuration,
		Transports: splitList(*f.transports), Origins: splitList(*f.origins),
		HandshakeHeaders: splitList(*f.hsHeaders), MaxHandshakeBytes: *f.maxHSBytes,
		MaxPacketBytes: *f.maxPacket, MaxBodyBytes: *f.maxBody, BodyTimeout: *f.bodyTimeout, IdleTimeout: *f.idleTimeout, SendQueue: *f.sendQueue, SendQueueBytes: *f.sendQBytes,
		MailboxBytes: *f.mailboxBytes, MailboxDrainTimeout: *f.mailboxDrain, PollBatchBytes: *f.pollBatch,
		ClientScript: *f.clientScript, StaticDir: *f.static, Logger: log, AliveTTL: *f.livenessTTL, RouteRefresh: *f.routeRefresh, RedisWait: *f.redisWait,
		MaxHandshakeRate: unlimitedIfZero(*f.maxHSRate), MaxHandshakeQueue: *f.maxHSQueue, HandshakeHold: *f.hsHold,
		MaxConnections: unlimitedIfZero(*f.maxConns), MaxBadPackets: *f.maxBad, MaxNamespaces: *f.maxNS, Authorize: *f.authorize,
		AuthorizeTimeout: *f.authTimeout, AuthorizeFailOpen: *f.authFailOpen,
	}
}

func (f *flags) run(args []string) error {
	log, ok, err := f.cmd.Parse(args)
	if !ok {
		return err
	}
	if *f.maxMailbox != 0 {
		log.Warn("-max-mailbox is deprecated and ignored: mailboxes are bounded in bytes (-mailbox-bytes, -mailbox-drain-timeout)")
	}
	cfg := f.config(log)
	if *f.binding {
		secret := os.Getenv(BindingSecretEnv)
		if len(secret) < 16 {
			return fmt.Errorf("-session-binding needs a secret of at least 16 bytes in %s, the same on every gateway", BindingSecretEnv)
		}
		cfg.SessionBindingSecret = []byte(secret)
	}
	if *f.apiAddr != "" {
		if err := api.CheckListen(*f.apiAddr, f.apiConfig(log).Key); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The gateway bounds its Redis calls with context deadlines (a
	// handshake's commit attempt, signal batches, opening a stream): let
	// them reach the socket, so a Redis that stops answering costs a call
	// its deadline, not the client's read timeout.
	// Per-command timeouts are set deliberately (-redis-wait), not
	// left at go-redis's defaults.
	rdb, err := f.cluster.Connect(ctx, func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		o.ReadTimeout, o.WriteTimeout = *f.redisWait, *f.redisWait
	})
	if err != nil {
		return err
	}
	defer rdb.Close()
	cfg.Keys = f.cluster.Keys() // Connect may choose the prefix (a Redis Cluster)
	reg := cli.NewRegistry()
	g, err := gateway.New(rdb, cfg, gateway.NewMetrics(reg))
	if err != nil {
		return err
	}
	var apiSrv *http.Server
	if *f.apiAddr != "" {
		em := worker.NewEmitter(rdb, worker.EmitterConfig{Keys: cfg.Keys, Node: "api-" + g.Node()})
		apiSrv = api.New(em, f.apiConfig(log), api.NewMetrics(reg)).HTTPServer()
	}
	return serve(ctx, log, g, cli.AdminHandler(reg, g.CheckReady, nil, *f.pprof), apiSrv, *f.addr, *f.adminAddr, *f.apiAddr, *f.flashAddr, *f.drainDelay, *f.drainTimeout)
}

// serve runs the gateway's listeners until ctx ends, then drains. apiSrv
// (nil: off) serves the server HTTP API on apiAddr.
func serve(ctx context.Context, log *slog.Logger, g *gateway.Gateway, adminHandler http.Handler, apiSrv *http.Server,
	addr, adminAddr, apiAddr, flashAddr string, delay, drain time.Duration) error {
	if err := g.Start(ctx); err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := g.HTTPServer()
	errc := make(chan error, 4)
	go func() { errc <- srv.Serve(l) }()
	log.Info("listening", "addr", l.Addr().String())
	var admin *http.Server
	if adminAddr != "" {
		al, err := net.Listen("tcp", adminAddr)
		if err != nil {
			return fmt.Errorf("listen admin %s: %w", adminAddr, err)
		}
		admin = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: adminHandler}
		go func() { errc <- admin.Serve(al) }()
		log.Info("admin listening", "addr", al.Addr().String())
	}
	if apiSrv != nil {
		apil, err := net.Listen("tcp", apiAddr)
		if err != nil {
			return fmt.Errorf("listen api %s: %w", apiAddr, err)
		}
		go func() { errc <- apiSrv.Serve(apil) }()
		log.Info("api listening", "addr", apil.Addr().String())
	}
	if flashAddr != "" {
		fl, err := net.Listen("tcp", flashAddr)
		if err != nil {
			return fmt.Errorf("listen flash policy %s: %w", flashAddr, err)
		}
		go func() { errc <- g.ServeFlashPolicy(ctx, fl) }()
		log.Info("flash policy server listening", "addr", fl.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	// Drain: unready first (the balancer stops sending traffic), then answer
	// parked polls and close websockets paced (never 0::, so clients
	// reconnect elsewhere), finish in-flight requests, flush signals.
	g.BeginDrain()
	log.Info("draining", "delay", delay, "timeout", drain)
	time.Sleep(delay)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	g.Drain(dctx)
	_ = srv.Shutdown(dctx)
	if err := g.Shutdown(dctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	if apiSrv != nil {
		_ = apiSrv.Shutdown(dctx)
	}
	if admin != nil {
		_ = admin.Shutdown(dctx)
	}
	return nil
}

// unlimitedIfZero maps a limit flag's 0 ("no limit", as the flags have
// always said) to the Config's -1 (where 0 takes the default).
func unlimitedIfZero[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
