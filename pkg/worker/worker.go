package worker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// Worker defaults (Config), also cmd/worker's flag defaults.
const (
	// DefaultHandlerTimeout is Config.HandlerTimeout's default.
	DefaultHandlerTimeout = 10 * time.Second
	// DefaultMaxAttempts is Config.MaxAttempts' default: the consumer's.
	DefaultMaxAttempts = bus.DefaultMaxAttempts
	// DefaultLeaseTTL is Config.LeaseTTL's default: the consumer's.
	DefaultLeaseTTL = bus.DefaultLeaseTTL
)

// Config configures a Worker. Zero fields take the documented defaults.
type Config struct {
	// Keys names the cluster's keys. Default: bus.NewKeys("", 0).
	Keys bus.Keys
	// Name is this worker's id, unique among workers. Default: generated.
	Name string
	// HandlerTimeout is the deadline of each handler's context; a handler
	// that overruns it is logged and counted. Default: DefaultHandlerTimeout
	// (10s).
	HandlerTimeout time.Duration
	// MaxAttempts is how often a failing signal is handled before it goes to
	// the dead-letter stream. Default: DefaultMaxAttempts (5).
	MaxAttempts int
	// LeaseTTL is the partition lease lifetime (see bus.ConsumerConfig).
	// Default: DefaultLeaseTTL (3s).
	LeaseTTL time.Duration
	// MaxMailbox is ignored.
	//
	// Deprecated: a polling session's mailbox bounds are set by the gateway
	// that created it (gateway.Config.MailboxBytes) and stored with the
	// session, so every process honours the same ones.
	MaxMailbox int
	// Logger receives the worker's logs. Default: slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives the worker's measurements.
	Metrics *Metrics
}

// Worker runs handlers for the signals of the partitions it owns.
type Worker struct {
	*Emitter
	cfg          Config
	log          *slog.Logger
	consumer     *bus.Consumer
	replyChannel string
	metrics      *Metrics

	mu         sync.Mutex
	namespaces map[string]*Namespace
	pending    map[pendingKey]*pendingAck
	authorize  AuthorizeHandler

	// Client input decides how often these happen: logged at most once per
	// 10 s, counted always.
	rejectedLog, unhandledLog rate.Sometimes
}

// Authorization is an OnAuthorize hook's verdict on a handshake.
type Authorization struct {
	// Allow admits the handshake; otherwise it is refused with 403
	// "handshake unauthorized".
	Allow bool
	// Reason says why (logged by the gateway).
	Reason string
	// Data is kept with the session as JSON; read it with Socket.AuthData.
	Data any
}

// AuthorizeHandler decides whether a handshake may proceed. An error refuses
// it with 500 "handshake error". It runs while the client waits: keep it fast.
type AuthorizeHandler func(ctx context.Context, hs session.Handshake) (Authorization, error)

// OnAuthorize sets the handshake hook; gateways ask it when started with
// -authorize. Without a hook, every handshake is allowed.
func (w *Worker) OnAuthorize(h AuthorizeHandler) {
	w.mu.Lock()
	w.authorize = h
	w.mu.Unlock()
}

type pendingKey struct {
	sid string
	id  uint64
}

type pendingAck struct {
	ns    string
	cb    AckFunc
	timer *time.Timer
}

// New returns a worker; register handlers with Namespace, then Run.
func New(rdb redis.UniversalClient, cfg Config) *Worker {
	if cfg.Keys == (bus.Keys{}) {
		cfg.Keys = bus.NewKeys("", 0)
	}
	if cfg.Name == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.Name = fmt.Sprintf("wk-%x", b)
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = DefaultHandlerTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	w := &Worker{
		Emitter:      NewEmitter(rdb, EmitterConfig{Keys: cfg.Keys, Node: cfg.Name}),
		cfg:          cfg,
		log:          cfg.Logger.With("worker", cfg.Name),
		replyChannel: cfg.Keys.ReplyChannel(cfg.Name),
		metrics:      cfg.Metrics,
		namespaces:   map[string]*Namespace{},
		pending:      map[pendingKey]*pendingAck{},
		rejectedLog:  rate.Sometimes{First: 1, Interval: 10 * time.Second},
		unhandledLog: rate.Sometimes{First: 1, Interval: 10 * time.Second},
	}
	m := cfg.Metrics
	w.consumer = bus.NewConsumer(rdb, bus.ConsumerConfig{
		Keys: cfg.Keys, Name: cfg.Name, LeaseTTL: cfg.LeaseTTL, MaxAttempts: cfg.MaxAttempts, Logger: cfg.Logger,
		OnDeadLetter: func(int) { m.DeadLetters.Inc() },
		OnReclaim:    func(_ int, n int) { m.Reclaimed.Add(float64(n)) },
		OnOwned:      func(n int) { m.Partitions.Set(float64(n)) },
		OnLag: func(p int, pending, lag int64) {
			m.Pending.WithLabelValues(strconv.Itoa(p)).Set(float64(pending))
			m.Lag.WithLabelValues(strconv.Itoa(p)).Set(float64(lag))
		},
	})
	return w
}

// Name returns the worker's id.
func (w *Worker) Name() string { return w.cfg.Name }

// CheckReady reports whether the worker is making progress (for /readyz):
// Redis answers, and its consumer rebalanced and turned every owned
// partition's loop recently.
func (w *Worker) CheckReady(ctx context.Context) error {
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("worker: redis: %w", err)
	}
	return w.consumer.Check()
}

// Owned returns the partitions the worker owns now.
func (w *Worker) Owned() []int { return w.consumer.Owned() }

// Namespace returns the handlers of namespace name ("" for the default
// one), creating it. Register handlers before Run.
func (w *Worker) Namespace(name string) *Namespace {
	w.mu.Lock()
	defer w.mu.Unlock()
	ns, ok := w.namespaces[name]
	if !ok {
		ns = &Namespace{name: name, events: map[string]EventHandler{}}
		w.namespaces[name] = ns
	}
	return ns
}

// Run handles signals until ctx ends, then finishes the batches in hand,
// releases its partitions and returns.
func (w *Worker) Run(ctx context.Context) error {
	sub := w.rdb.Subscribe(ctx, w.replyChannel)
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return fmt.Errorf("worker: subscribe replies: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer sub.Close()
		w.replies(ctx, sub)
	}()
	w.log.Info("worker started")
	err := w.consumer.Run(ctx, w.handleAndCommit)
	wg.Wait()
	w.log.Info("worker stopped")
	return err
}

// answerAuthorize runs the OnAuthorize hook for a handshake and publishes
// the verdict to the waiting gateway. The answer is not an effect: a
// handshake waits for it now, and a late or repeated answer is ignored.
func (w *Worker) answerAuthorize(ctx context.Context, sig bus.Signal) error {
	node, id, ok := strings.Cut(sig.Reply, " ")
	if !ok {
		return nil // malformed request: nobody to answer
	}
	w.mu.Lock()
	h := w.authorize
	w.mu.Unlock()
	verdict, reason, data := "1", "", ""
	if h != nil {
		var hs session.Handshake
		_ = json.Unmarshal([]byte(sig.Data), &hs)
		hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
		a, err := safeAuthorize(hctx, h, hs)
		cancel()
		switch {
		case err != nil:
			verdict, reason = "e", err.Error()
			w.log.Warn("authorize hook failed", "err", err)
		case !a.Allow:
			verdict, reason = "0", a.Reason
		default:
			reason = a.Reason
			if a.Data != nil {
				b, err := json.Marshal(a.Data)
				if err != nil {
					verdict, reason = "e", err.Error()
				} else {
					data = string(b)
				}
			}
		}
	}
	w.metrics.Signals.WithLabelValues(string(sig.Kind), map[string]string{"1": "allowed", "0": "denied", "e": "error"}[verdict]).Inc()
	msg := bus.Route{Op: bus.OpAuth, SID: id, Arg: verdict, Room: strings.ReplaceAll(reason, "\n", " "), Packet: data}
	return w.rdb.Publish(ctx, w.keys.GatewayChannel(node), msg.String()).Err()
}

func safeAuthorize(ctx context.Context, h AuthorizeHandler, hs session.Handshake) (a Authorization, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("authorize hook panicked: %v", r)
		}
	}()
	return h(ctx, hs)
}

// register remembers an EmitAck callback and returns its ack id: random in
// [1, 2^53), so any worker's ids are unique per session and exact in
// JavaScript.
func (w *Worker) register(sid, ns string, timeout time.Duration, cb AckFunc) uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := binary.BigEndian.Uint64(b[:])%(1<<53-1) + 1
	key := pendingKey{sid, id}
	p := &pendingAck{ns: ns, cb: cb}
	// The timer is set under the lock: take, which stops it, may run as soon
	// as the entry is visible (a quick answer, or a short timeout).
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending[key] = p
	p.timer = time.AfterFunc(timeout, func() {
		if w.take(key) != nil {
			w.metrics.AckTimeouts.Inc()
			cb(context.Background(), w.Emitter.Socket(sid, ns).attach(w), nil, ErrAckTimeout)
		}
	})
	return id
}

func (w *Worker) take(key pendingKey) *pendingAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending[key]
	delete(w.pending, key)
	if p != nil && p.timer != nil {
		p.timer.Stop()
	}
	return p
}

// replies receives clients' answers to EmitAck (bus.Reply).
func (w *Worker) replies(ctx context.Context, sub *redis.PubSub) {
	ch := sub.Channel(redis.WithChannelSize(4096))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			r, err := bus.ParseReply(msg.Payload)
			if err != nil {
				w.log.Warn("ack reply dropped", "err", err)
				continue
			}
			p := w.take(pendingKey{r.SID, r.ID})
			if p == nil {
				continue // timed out already, or dropped with a failed handler
			}
			w.metrics.AcksRouted.Inc()
			args := json.RawMessage(r.Args)
			if len(args) == 0 {
				args = json.RawMessage("[]")
			}
			go p.cb(ctx, w.Emitter.Socket(r.SID, p.ns).attach(w), args, nil)
		}
	}
}

func (s *Socket) attach(w *Worker) *Socket { s.w = w; return s }

// handleAndCommit runs the handlers of each partition's batch in order (the
// partitions concurrently) and commits every effect with the batches'
// acknowledgements in one script.
func (w *Worker) handleAndCommit(ctx context.Context, batches []bus.Batch) []bus.Outcome {
	type result struct {
		commits []session.Commit
		recs    []*recorder
		failed  error
	}
	results := make([]result, len(batches))
	run := func(i int) {
		b := batches[i]
		stream := w.keys.Stream(b.Partition)
		r := &results[i]
		r.commits = make([]session.Commit, 0, len(b.Signals))
		for _, sig := range b.Signals {
			rec := &recorder{}
			if err := w.dispatch(ctx, sig, rec); err != nil {
				w.drop(rec)
				r.failed = fmt.Errorf("signal %s (%s %q): %w", sig.ID, sig.Kind, sig.Name, err)
				break
			}
			r.commits = append(r.commits, session.Commit{Stream: stream, ID: sig.ID, Effects: rec.effects})
			r.recs = append(r.recs, rec)
		}
	}
	if len(batches) == 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for i := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run(i)
			}()
		}
		wg.Wait()
	}
	var all []session.Commit
	for _, r := range results {
		all = append(all, r.commits...)
	}
	outcomes := make([]bus.Outcome, len(batches))
	if len(all) > 0 {
		if _, err := w.store.Apply(ctx, all...); err != nil {
			for i, r := range results {
				for _, rec := range r.recs {
					w.drop(rec)
				}
				outcomes[i] = bus.Outcome{Err: err}
			}
			return outcomes
		}
	}
	for i, r := range results {
		outcomes[i] = bus.Outcome{N: len(r.commits), Err: r.failed}
	}
	return outcomes
}

// drop forgets the callbacks a failed handler registered.
func (w *Worker) drop(rec *recorder) {
	for _, k := range rec.acks {
		w.take(k)
	}
}

// unhandled counts and logs (at most once per 10 s) a message, JSON message
// or event that no handler of this worker takes: in a namespace it does not
// serve, or with no handler for its name. It is acknowledged like a handled
// one (no worker owning the partition would handle it either).
func (w *Worker) unhandled(sig bus.Signal) {
	w.metrics.Signals.WithLabelValues(string(sig.Kind), "unhandled").Inc()
	w.unhandledLog.Do(func() {
		w.log.Warn("signal with no handler (logged at most once per 10 s; counted in realtime_worker_signals_total{result=\"unhandled\"})",
			"kind", sig.Kind, "namespace", sig.NS, "event", sig.Name)
	})
}

// dispatch runs the handler for one signal, turning a panic into an error.
func (w *Worker) dispatch(ctx context.Context, sig bus.Signal, rec *recorder) (err error) {
	handled := true
	if sig.Kind == bus.KindAuthorize {
		return w.answerAuthorize(ctx, sig)
	}
	w.mu.Lock()
	ns := w.namespaces[sig.NS]
	w.mu.Unlock()
	kind := string(sig.Kind)
	if sig.Kind == bus.KindAck || (ns == nil && (sig.Kind == bus.KindConnect || sig.Kind == bus.KindDisconnect)) {
		w.metrics.Signals.WithLabelValues(kind, "ignored").Inc()
		return nil
	}
	if ns == nil {
		w.unhandled(sig)
		return nil
	}
	s := &Socket{id: sig.SID, ns: sig.NS, em: w.Emitter, w: w, rec: rec}
	hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
		took := time.Since(start)
		// Event names come from clients: only names with an OnEvent handler
		// (a set the app bounds) get their own label.
		event := ""
		if sig.Kind == bus.KindEvent {
			event = "other"
			if _, ok := ns.events[sig.Name]; ok {
				event = sig.Name
			}
		}
		if !handled {
			w.unhandled(sig)
			return
		}
		w.metrics.HandlerSeconds.WithLabelValues(kind, event).Observe(took.Seconds())
		result := "ok"
		switch {
		case errors.Is(err, ErrRejected):
			// Invalid client input, answered by the handler: commit what
			// it did and move on.
			result, err = "rejected", nil
			w.rejectedLog.Do(func() {
				w.log.Info("handler rejected client input (logged at most once per 10 s; counted in realtime_worker_signals_total{result=\"rejected\"})",
					"kind", kind, "event", sig.Name)
			})
		case err != nil:
			result = "error"
			w.log.Warn("handler failed", "kind", kind, "event", sig.Name, "sid", sig.SID, "err", err)
		}
		if took > w.cfg.HandlerTimeout {
			w.metrics.Overruns.Inc()
			w.log.Warn("handler overran its deadline", "kind", kind, "event", sig.Name, "took", took, "deadline", w.cfg.HandlerTimeout)
		}
		w.metrics.Signals.WithLabelValues(kind, result).Inc()
	}()
	handled, err = ns.callHandler(hctx, s, sig)
	return err
}
