package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/ratelog"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// Gateway is one gateway process's Socket.IO server. Create it with New,
// call Start, serve it as an http.Handler, and Shutdown it.
type Gateway struct {
	cfg       Config
	rdb       redis.UniversalClient
	store     *session.Store
	committer *bus.Committer
	metrics   *Metrics
	log       *slog.Logger

	transports map[string]bool
	handshake  string   // ":hb:close:transports" suffix of every handshake
	static     *os.Root // Config.StaticDir, nil when not configured (static.go)

	pollSeq atomic.Uint64
	polls   sync.Map           // sid -> *pollWaiter (polls parked here)
	auths   sync.Map           // request id -> chan bus.Route (handshakes waiting for authorization)
	probes  sync.Map           // nonce -> chan struct{} (readiness probes in flight)
	conns   sync.Map           // sid -> *streamConn (streaming connections held here)
	rooms   []roomIndex        // by partition: the rooms of the connections held here
	routes  []*bus.RouteReader // by partition: the route streams (dispatch.go)

	// routeOutages counts the route streams whose reads fail now: the
	// first to fail and the last to read again are logged (dispatch.go).
	routeOutages atomic.Int32

	postSeq atomic.Uint64 // ids of POSTs that record themselves (session.PostWrite)

	heartbeats    heartbeatWheel     // 2:: to every connection held here
	sessionChecks chan []*streamConn // slots of the wheel whose sessions to check (sessioncheck.go)
	pollWheel     pollWheel          // parked polls whose sessions to check (pollcheck.go)
	orphanLog     ratelog.Limiter
	commitFailLog ratelog.Limiter
	postRetryLog  ratelog.Limiter
	ready         atomic.Int32 // the last readiness check's result: readyUnknown, readyYes, readyNo

	admission *admission   // handshakes held until admitted
	held      atomic.Int64 // streaming connections held plus polls parked
	utf8Log   [len(utf8Directions)]ratelog.Limiter
	bodyLog   ratelog.Limiter                   // bodies cut off by Config.BodyTimeout (server.go)
	writeLog  ratelog.Limiter                   // writes a client did not take within writeTimeout (server.go)
	rejectLog [numRejectReasons]ratelog.Limiter // "rejected" lines, by reason (reject.go)
	badLog    ratelog.Limiter                   // connections cut off for bad input (websocket.go)
	idleConns sync.Map                          // net.Conn -> struct{}: keep-alive connections idle now (server.go)

	draining atomic.Bool
	drainCh  chan struct{}
	// routesNow asks routeLoop to read the route table at once (a commit
	// batch found it stale).
	routesNow chan struct{}
	stop      context.CancelFunc
	wg        sync.WaitGroup
	drainOnce sync.Once
	shutOnce  sync.Once
}

// New returns a gateway using rdb. Metrics may be nil (a private set is made).
func New(rdb redis.UniversalClient, cfg Config, metrics *Metrics) (*Gateway, error) {
	cfg.defaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	g := &Gateway{
		cfg:        cfg,
		rdb:        rdb,
		metrics:    metrics,
		log:        cfg.Logger.With("node", cfg.Node),
		transports: map[string]bool{},
		drainCh:    make(chan struct{}),
		routesNow:  make(chan struct{}, 1),

		sessionChecks: make(chan []*streamConn, wheelSlots),
	}
	g.heartbeats.check = g.queueSessionCheck
	if err := cfg.checkNode(); err != nil {
		return nil, err
	}
	if err := cfg.checkTimers(); err != nil {
		return nil, err
	}
	if err := cfg.checkLimits(); err != nil {
		return nil, err
	}
	if err := cfg.checkOrigins(); err != nil {
		return nil, err
	}
	for _, t := range cfg.Transports {
		switch t {
		case TransportWebSocket, TransportFlashSocket, TransportHTMLFile, TransportXHRPolling, TransportJSONPPolling:
			g.transports[t] = true
		default:
			return nil, fmt.Errorf("gateway: unknown transport %q", t)
		}
	}
	g.handshake = fmt.Sprintf(":%d:%d:%s", seconds(cfg.HeartbeatTimeout), seconds(cfg.CloseTimeout),
		strings.Join(cfg.Transports, ","))
	g.store = session.New(rdb, session.Config{
		Keys: cfg.Keys, Node: cfg.Node,
		HandshakeTimeout: cfg.HandshakeTimeout, CloseTimeout: cfg.CloseTimeout,
		PollingDuration: cfg.PollingDuration, MailboxBytes: cfg.MailboxBytes,
		MailboxDrainTimeout: cfg.MailboxDrainTimeout, PollBatchBytes: cfg.PollBatchBytes,
		// Not ExclusiveStreams: a stream held on another gateway is taken
		// over (openConn), since that gateway may have died between
		// opening the session and writing to it (issue 14).
		MaxNamespaces: cfg.MaxNamespaces,
		RouteRefresh:  cfg.RouteRefresh,
	})
	g.committer = bus.NewCommitter(rdb, bus.CommitterConfig{Keys: cfg.Keys, Node: cfg.Node,
		Timeout: max(bus.DefaultCommitTimeout, cfg.RedisWait+time.Second), Observe: func(_ int, took time.Duration, err error) {
			g.metrics.PublishSeconds.Observe(took.Seconds())
			if err != nil {
				g.metrics.RedisErrors.WithLabelValues("publish").Inc()
			}
			if session.IsRouteTableStale(err) {
				g.refreshRoutesNow()
			}
		}, RolledBack: g.commitsRolledBack})
	g.rooms = make([]roomIndex, cfg.Keys.Partitions())
	for p := range g.rooms {
		g.rooms[p].init()
	}
	g.admission = newAdmission(cfg.MaxHandshakeRate, cfg.MaxHandshakeQueue, g.metrics.HandshakesWaiting.Add)
	if cfg.StaticDir != "" {
		// A directory that cannot be opened is served as before (404 for
		// every path), with a warning: cmd/demo's default (web/chat,
		// relative) is absent outside a checkout.
		if root, err := os.OpenRoot(cfg.StaticDir); err != nil {
			g.log.Warn("static directory cannot be opened; every static path is 404", "dir", cfg.StaticDir, "err", err)
		} else {
			g.static = root
		}
	}
	return g, nil
}

// Node returns the gateway's node id.
func (g *Gateway) Node() string { return g.cfg.Node }

// Store returns the session store the gateway uses.
func (g *Gateway) Store() *session.Store { return g.store }

// Start opens this gateway's route stream (so no route message committed
// from then on is missed), starts reading it, and starts the liveness and
// reaper loops. It fails if Redis cannot be reached.
func (g *Gateway) Start(ctx context.Context) error {
	start := time.Now()
	if err := g.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	g.metrics.RedisRTT.Observe(time.Since(start).Seconds())
	// A previous run under this node id (killed, crashed) may have left
	// streaming sessions: their connections are gone, and this run's
	// liveness key would keep them from being reaped.
	n, err := g.store.EndOwnStreams(ctx)
	if err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	if n > 0 {
		g.metrics.disconnected(bus.ReasonGatewayLost, n)
		g.log.Warn("streaming sessions of this node's previous run ended", "count", n)
	}
	g.routes = make([]*bus.RouteReader, g.cfg.Keys.Partitions())
	for p := range g.routes {
		g.routes[p] = g.newRouteReader(p)
		if err := g.routes[p].Open(ctx); err != nil {
			return fmt.Errorf("gateway: start: %w", err)
		}
	}
	// Alive waits, the first time this node id joins the cluster, until
	// every gateway's route table can know of it.
	if err := g.store.Alive(ctx, g.cfg.AliveTTL); err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	if err := g.store.RefreshRoutes(ctx); err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	// The loops outlive ctx: they run until Shutdown.
	loops, stop := context.WithCancel(context.Background())
	g.stop = stop
	ctx = loops
	if bus.Spread(g.rdb, g.cfg.Keys) {
		// One XREAD may not name streams of two slots: a loop per stream.
		g.wg.Add(len(g.routes))
		for _, r := range g.routes {
			go g.dispatchLoop(ctx, r)
		}
	} else {
		g.wg.Add(1)
		go g.dispatchLoop(ctx, g.routes...)
	}
	g.wg.Add(4)
	go g.routeLoop(ctx)
	go g.aliveLoop(ctx)
	go g.reapLoop(ctx)
	go g.sessionCheckLoop(ctx)
	g.log.Info("gateway started", "transports", g.cfg.Transports)
	return nil
}

// BeginDrain marks the gateway unready (its readiness probe fails, so load
// balancers stop sending it traffic) while it keeps serving: polls are held
// at most a second, so none is left for Shutdown to wait on. Call Shutdown
// once the balancers have noticed.
func (g *Gateway) BeginDrain() {
	if !g.draining.Swap(true) {
		g.log.Info("draining: unready, still serving until shutdown")
	}
}

// Drain answers parked polls with 8:: and closes the streaming connections
// held here, paced over half of the context's remaining time (never with
// 0::, so 0.9 clients reconnect, through the balancer, elsewhere); each
// closed connection's session ends with reason "shutdown". It returns when they are closed. It
// is idempotent; requests still arriving are served (polls held at most a
// second) until the HTTP server is shut down.
func (g *Gateway) Drain(ctx context.Context) {
	g.drainOnce.Do(func() {
		g.BeginDrain()
		close(g.drainCh)
		var all []*streamConn
		g.conns.Range(func(_, v any) bool { all = append(all, v.(*streamConn)); return true })
		window := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			window = time.Until(dl) / 2
		}
		for i, s := range all {
			s.closeLocal(bus.ReasonShutdown)
			if i < len(all)-1 && window > 0 {
				select {
				case <-time.After(window / time.Duration(len(all))):
				case <-ctx.Done():
					for _, rest := range all[i+1:] {
						rest.closeLocal(bus.ReasonShutdown)
					}
				}
			}
		}
		for _, s := range all {
			select {
			case <-s.finished:
			case <-ctx.Done():
			}
		}
		g.log.Info("gateway drained", "streams_closed", len(all))
	})
}

// Shutdown drains the gateway (if Drain was not called), then commits the
// signals still queued, stops its loops and deletes its liveness key. Call
// it after the HTTP server's Shutdown, so in-flight requests complete first.
// It is idempotent.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.Drain(ctx)
	var err error
	g.shutOnce.Do(func() {
		g.committer.Close()
		if g.stop != nil {
			g.stop()
		}
		g.wg.Wait()
		err = g.store.Leave(context.Background())
		if g.static != nil {
			_ = g.static.Close()
		}
	})
	return err
}

// Ready reports whether the gateway takes new sessions.
func (g *Gateway) Ready() bool { return !g.draining.Load() }

// ErrNotReady is wrapped by CheckReady's errors.
var ErrNotReady = errors.New("gateway: not ready")

// CheckReady proves the gateway's path works, for /readyz: it is not
// draining, Redis takes its writes (the liveness key is written, its
// lifetime left as the liveness loop set it, which a
// Redis out of memory with noeviction, a read-only replica, or one that does
// not answer within ctx refuses), and a probe appended to its route stream
// is read back by its reader within ctx (the reader can be stuck while
// pings still succeed). Each change between ready and not ready is counted in
// realtime_gateway_readiness_changes_total, shown in realtime_gateway_ready
// and logged once.
func (g *Gateway) CheckReady(ctx context.Context) error {
	err := g.checkReady(ctx)
	g.readiness(err)
	return err
}

func (g *Gateway) checkReady(ctx context.Context) error {
	if g.draining.Load() {
		return fmt.Errorf("%w: draining", ErrNotReady)
	}
	if err := g.store.ProbeAlive(ctx); err != nil {
		return fmt.Errorf("%w: redis refuses writes: %v", ErrNotReady, err)
	}
	// A probe in each partition's route stream, each read back by its
	// reader.
	waits := make([]chan struct{}, g.cfg.Keys.Partitions())
	nonces := make([]string, len(waits))
	for p := range waits {
		nonces[p], waits[p] = randomID(8), make(chan struct{})
		g.probes.Store(nonces[p], waits[p])
	}
	defer func() {
		for _, n := range nonces {
			g.probes.Delete(n)
		}
	}()
	cmds := make([]*redis.StringCmd, len(waits))
	_, err := g.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range waits {
			cmds[p] = pipe.XAdd(ctx, bus.RouteArgs(g.cfg.Keys.RouteStream(p, g.cfg.Node),
				bus.Route{Op: bus.OpProbe, SID: nonces[p]}.String()))
		}
		return nil
	})
	if err == nil {
		for p, c := range cmds {
			if c.Err() != nil { // redis.Nil: the stream does not exist
				err = fmt.Errorf("partition %d: %w", p, bus.RouteAppendError(g.cfg.Keys.RouteStream(p, g.cfg.Node), c.Err()))
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%w: route stream: %v", ErrNotReady, err)
	}
	for p, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: the probe of route stream %d was not read back: %v", ErrNotReady, p, ctx.Err())
		}
	}
	return nil
}

// Readiness states of Gateway.ready.
const (
	readyUnknown int32 = iota // not checked yet
	readyYes
	readyNo
)

// readiness records the result of a readiness check: a change is counted,
// shown in the ready gauge and logged (one line per change, not per check).
func (g *Gateway) readiness(err error) {
	now := readyYes
	if err != nil {
		now = readyNo
	}
	old := g.ready.Swap(now)
	if old == now {
		return
	}
	if old == readyUnknown && now == readyYes {
		g.metrics.Ready.Set(1)
		return // starting ready is not news
	}
	if now == readyYes {
		g.metrics.Ready.Set(1)
		g.metrics.ReadinessChanges.WithLabelValues("ready").Inc()
		g.log.Info("ready again")
		return
	}
	g.metrics.Ready.Set(0)
	g.metrics.ReadinessChanges.WithLabelValues("unready").Inc()
	g.log.Warn("not ready", "err", err)
}

func seconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
