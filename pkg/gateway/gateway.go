package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// Gateway is one gateway process's Socket.IO server. Create it with New,
// call Start, serve it as an http.Handler, and Shutdown it.
type Gateway struct {
	cfg     Config
	rdb     redis.UniversalClient
	store   *session.Store
	pub     *bus.Publisher
	metrics *Metrics
	log     *slog.Logger

	transports map[string]bool
	handshake  string // ":hb:close:transports" suffix of every handshake

	pollSeq atomic.Uint64
	polls   sync.Map // sid -> *pollWaiter (polls parked here)
	auths   sync.Map // request id -> chan bus.Route (handshakes waiting for authorization)
	probes  sync.Map // nonce -> chan struct{} (readiness probes in flight)
	streams sync.Map // sid -> *stream (streams held here)
	rooms   roomIndex

	heartbeats heartbeatWheel // 2:: to every stream held here

	admission *admission   // handshakes held until admitted
	held      atomic.Int64 // streams held plus polls parked
	utf8Log   [len(utf8Directions)]rateLog

	draining  atomic.Bool
	drainCh   chan struct{}
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
	}
	if err := cfg.checkTimers(); err != nil {
		return nil, err
	}
	if err := cfg.checkLimits(); err != nil {
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
	})
	g.pub = bus.NewPublisher(rdb, bus.PublisherConfig{Observe: func(_ int, took time.Duration, err error) {
		g.metrics.PublishSeconds.Observe(took.Seconds())
		if err != nil {
			g.metrics.RedisErrors.WithLabelValues("publish").Inc()
		}
	}})
	g.rooms.init()
	g.admission = newAdmission(cfg.MaxHandshakeRate, cfg.MaxHandshakeQueue, g.metrics.HandshakesWaiting.Add)
	return g, nil
}

// Node returns the gateway's node id.
func (g *Gateway) Node() string { return g.cfg.Node }

// Store returns the session store the gateway uses.
func (g *Gateway) Store() *session.Store { return g.store }

// Start subscribes to this gateway's channels (returning once the
// subscription is confirmed, so no route message is missed) and starts the
// liveness and reaper loops. It fails if Redis cannot be reached.
func (g *Gateway) Start(ctx context.Context) error {
	start := time.Now()
	if err := g.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	g.metrics.RedisRTT.Observe(time.Since(start).Seconds())
	if err := g.store.Alive(ctx, g.cfg.AliveTTL); err != nil {
		return fmt.Errorf("gateway: start: %w", err)
	}
	// The loops outlive ctx: they run until Shutdown.
	loops, stop := context.WithCancel(context.Background())
	g.stop = stop
	sub := g.rdb.Subscribe(loops, g.cfg.Keys.GatewayChannel(g.cfg.Node), g.cfg.Keys.BroadcastChannel())
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		stop()
		return fmt.Errorf("gateway: subscribe: %w", err)
	}
	ctx = loops
	g.wg.Add(3)
	go g.dispatchLoop(ctx, sub)
	go g.aliveLoop(ctx)
	go g.reapLoop(ctx)
	g.log.Info("gateway started", "transports", g.cfg.Transports)
	return nil
}

func (g *Gateway) dispatchLoop(ctx context.Context, sub *redis.PubSub) {
	defer g.wg.Done()
	defer sub.Close()
	ch := sub.Channel(redis.WithChannelSize(65536))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			err := bus.EachRoute(msg.Payload, func(m string) {
				r, err := bus.ParseRoute(m)
				if err != nil {
					g.rejected("bad_route", "err", err)
					return
				}
				g.metrics.RouteMessages.WithLabelValues(string(r.Op)).Inc()
				g.dispatch(r)
			})
			if err != nil {
				g.rejected("bad_route", "err", err)
			}
		}
	}
}

// dispatch applies one route message. It never blocks.
func (g *Gateway) dispatch(r bus.Route) {
	switch r.Op {
	case bus.OpDeliver:
		if s := g.stream(r.SID); s != nil {
			s.sendRouted(r.Packet, routeDirect, r.Time)
		}
	case bus.OpWake, bus.OpKick:
		if v, ok := g.polls.Load(r.SID); ok {
			v.(*pollWaiter).notify(r.Arg, pollEvent{kick: r.Op == bus.OpKick})
		}
	case bus.OpClose:
		if s := g.stream(r.SID); s != nil {
			s.closeRemote(r.Packet)
		}
		if v, ok := g.polls.Load(r.SID); ok {
			v.(*pollWaiter).notifyAll(pollEvent{closed: true, packet: r.Packet})
		}
	case bus.OpJoin:
		if s := g.stream(r.SID); s != nil {
			if r.Room == "" {
				s.setNamespace(r.Arg, true)
			} else {
				g.rooms.join(r.Arg, r.Room, r.SID)
			}
		}
	case bus.OpLeave:
		if r.Room != "" {
			g.rooms.leave(r.Arg, r.Room, r.SID)
		} else if s := g.stream(r.SID); s != nil {
			s.setNamespace(r.Arg, false)
			g.rooms.leaveNamespace(r.Arg, r.SID)
		}
	case bus.OpBroadcast:
		g.broadcast(r)
	case bus.OpProbe:
		if v, ok := g.probes.Load(r.SID); ok {
			close(v.(chan struct{}))
			g.probes.Delete(r.SID)
		}
	case bus.OpAuth:
		if v, ok := g.auths.Load(r.SID); ok {
			select {
			case v.(chan bus.Route) <- r:
			default:
			}
		}
	}
}

func (g *Gateway) stream(sid string) *stream {
	if v, ok := g.streams.Load(sid); ok {
		return v.(*stream)
	}
	return nil
}

// observeDelivery records how long a routed packet took from its Redis
// script to its write to the client (the clocks of Redis' callers; coarse,
// in ms).
func (g *Gateway) observeDelivery(route int, routedMs int64) {
	if routedMs > 0 {
		g.metrics.delivery[route].Observe(max(0, float64(time.Now().UnixMilli()-routedMs)/1000))
	}
}

// broadcast fans a packet out to the streams held here that are in the
// namespace (room "") or room, except one sid. Polling members got it
// through their mailboxes from the sender.
func (g *Gateway) broadcast(r bus.Route) {
	if r.Room != "" {
		for _, sid := range g.rooms.members(r.Arg, r.Room) {
			if sid != r.SID {
				if s := g.stream(sid); s != nil {
					s.sendRouted(r.Packet, routeBroadcast, r.Time)
				}
			}
		}
		return
	}
	g.streams.Range(func(_, v any) bool {
		s := v.(*stream)
		if s.sid != r.SID && s.inNamespace(r.Arg) {
			s.sendRouted(r.Packet, routeBroadcast, r.Time)
		}
		return true
	})
}

func (g *Gateway) aliveLoop(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.AliveTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			if err := g.rdb.Ping(ctx).Err(); err == nil {
				g.metrics.RedisRTT.Observe(time.Since(start).Seconds())
			}
			if err := g.store.Alive(ctx, g.cfg.AliveTTL); err != nil && ctx.Err() == nil {
				g.metrics.RedisErrors.WithLabelValues("alive").Inc()
				g.log.Warn("liveness key not renewed", "err", err)
			}
		}
	}
}

func (g *Gateway) reapLoop(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.ReapInterval)
	defer t.Stop()
	const limit = 500
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := g.store.ReapDeadlines(ctx, limit)
			if err != nil {
				if ctx.Err() == nil {
					g.metrics.RedisErrors.WithLabelValues("reap").Inc()
					g.log.Warn("reaping expired sessions failed", "err", err)
				}
				break
			}
			if n > 0 {
				g.metrics.Disconnects.WithLabelValues(bus.ReasonTimeout).Add(float64(n))
				g.log.Info("expired sessions ended", "count", n)
			}
			if n < limit {
				break
			}
		}
		if c, err := g.store.Counts(ctx); err == nil {
			g.metrics.Sessions.WithLabelValues("handshaken").Set(float64(c.Handshaken))
			g.metrics.Sessions.WithLabelValues("polling").Set(float64(c.Polling))
			g.metrics.Sessions.WithLabelValues("streaming").Set(float64(c.Streaming))
		}
		n, err := g.store.ReapGateways(ctx, limit)
		if err != nil && ctx.Err() == nil {
			g.metrics.RedisErrors.WithLabelValues("reap").Inc()
			g.log.Warn("reaping dead gateways failed", "err", err)
		}
		if n > 0 {
			g.metrics.Disconnects.WithLabelValues(bus.ReasonGatewayLost).Add(float64(n))
			g.log.Warn("sessions of dead gateways ended", "count", n)
		}
	}
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

// Drain answers parked polls with 8:: and closes the streams held here,
// paced over half of the context's remaining time (never with 0::, so 0.9
// clients reconnect, through the balancer, elsewhere); each closed stream's
// session ends with reason "shutdown". It returns when they are closed. It
// is idempotent; requests still arriving are served (polls held at most a
// second) until the HTTP server is shut down.
func (g *Gateway) Drain(ctx context.Context) {
	g.drainOnce.Do(func() {
		g.BeginDrain()
		close(g.drainCh)
		var all []*stream
		g.streams.Range(func(_, v any) bool { all = append(all, v.(*stream)); return true })
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
		g.pub.Close()
		if g.stop != nil {
			g.stop()
		}
		g.wg.Wait()
		err = g.store.Leave(context.Background())
	})
	return err
}

// ServeHTTP routes /socket.io/... requests; anything else goes to the static
// directory, if configured.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/socket.io")
	if !ok || (rest != "" && rest[0] != '/') {
		g.serveStatic(w, r)
		return
	}
	rest = strings.TrimPrefix(rest, "/")
	if rest == "" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("Welcome to socket.io."))
		return
	}
	if rest == "socket.io.js" {
		g.serveClientScript(w, r)
		return
	}
	parts := strings.SplitN(rest, "/", 4)
	if parts[0] != "1" {
		g.reject(w, r, http.StatusInternalServerError, "bad_protocol", "Protocol version not supported.")
		return
	}
	if r.Method == http.MethodOptions {
		g.preflight(w, r)
		return
	}
	transport, sid := "", ""
	if len(parts) > 1 {
		transport = parts[1]
	}
	if len(parts) > 2 {
		sid = parts[2]
	}
	if transport == "" && sid == "" {
		g.serveHandshake(w, r)
		return
	}
	if _, disc := r.URL.Query()["disconnect"]; disc && sid != "" {
		g.serveDisconnect(w, r, sid)
		return
	}
	if !g.transports[transport] {
		g.reject(w, r, http.StatusBadRequest, "unknown_transport", "unknown transport")
		return
	}
	if sid == "" || strings.ContainsAny(sid, ":\n") || len(sid) > 64 {
		g.reject(w, r, http.StatusBadRequest, "bad_sid", "bad session id")
		return
	}
	switch transport {
	case TransportWebSocket, TransportFlashSocket:
		g.serveWebSocket(w, r, transport, sid)
	case TransportHTMLFile:
		if r.Method == http.MethodPost {
			g.servePost(w, r, transport, sid)
		} else {
			g.serveHTMLFile(w, r, sid)
		}
	default:
		switch r.Method {
		case http.MethodGet:
			g.servePoll(w, r, transport, sid)
		case http.MethodPost:
			g.servePost(w, r, transport, sid)
		default:
			g.reject(w, r, http.StatusMethodNotAllowed, "bad_method", "method not allowed")
		}
	}
}

// rejected counts bad input by reason and logs it: every rejection goes
// through here, so each has a metric and a log line.
func (g *Gateway) rejected(reason string, attrs ...any) {
	g.metrics.Rejected.WithLabelValues(reason).Inc()
	g.log.Info("rejected", append([]any{"reason", reason}, attrs...)...)
}

// reject answers a bad request with status and body, counts it and logs it.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, status int, reason, body string) {
	g.rejected(reason, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	g.cors(w, r)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// cors adds the reference's CORS headers when the request has an Origin.
func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers CORS preflight requests (the reference never does).
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) {
	g.cors(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) serveClientScript(w http.ResponseWriter, r *http.Request) {
	if g.cfg.ClientScript == "" {
		http.Error(w, "client script not configured: install socket.io-client@0.9.16 and start the gateway with -client-script", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/javascript")
	http.ServeFile(w, r, g.cfg.ClientScript)
}

func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request) {
	if g.cfg.StaticDir == "" {
		http.NotFound(w, r)
		return
	}
	http.FileServer(http.Dir(g.cfg.StaticDir)).ServeHTTP(w, r)
}

// serveDisconnect handles the synchronous ?disconnect request sent on page
// unload: the session ends whether or not a poll is pending.
func (g *Gateway) serveDisconnect(w http.ResponseWriter, r *http.Request, sid string) {
	g.cors(w, r)
	if err := g.pub.Publish(r.Context(), sid, g.store.EndWrite(sid, bus.ReasonClient, "0::")); err != nil {
		g.metrics.RedisErrors.WithLabelValues("disconnect").Inc()
		g.log.Warn("disconnect request failed", "sid", sid, "err", err)
	} else {
		g.metrics.Disconnects.WithLabelValues(bus.ReasonClient).Inc()
	}
	w.WriteHeader(http.StatusOK)
}

// Ready reports whether the gateway takes new sessions.
func (g *Gateway) Ready() bool { return !g.draining.Load() }

// ErrNotReady is wrapped by CheckReady's errors.
var ErrNotReady = errors.New("gateway: not ready")

// CheckReady proves the gateway's path works, for /readyz: it is not
// draining, and a probe published on its own channel comes back through
// its subscription within ctx (a subscription can go silent while pings
// still succeed).
func (g *Gateway) CheckReady(ctx context.Context) error {
	if g.draining.Load() {
		return fmt.Errorf("%w: draining", ErrNotReady)
	}
	nonce := randomID(8)
	ch := make(chan struct{})
	g.probes.Store(nonce, ch)
	defer g.probes.Delete(nonce)
	msg := bus.Route{Op: bus.OpProbe, SID: nonce}.String()
	if err := g.rdb.Publish(ctx, g.cfg.Keys.GatewayChannel(g.cfg.Node), msg).Err(); err != nil {
		return fmt.Errorf("%w: redis: %v", ErrNotReady, err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: the pub/sub probe did not come back: %v", ErrNotReady, ctx.Err())
	}
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
