package worker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/realtime/realtime/internal/ratelog"
	"github.com/realtime/realtime/pkg/admin"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
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
	// App names the app this worker runs: the consumer group it reads the
	// partitions through, with the other replicas of the same app
	// (bus.ValidGroup). Every app gets every signal, so apps that serve
	// different namespaces run side by side on one cluster: a worker with
	// an App acknowledges the signals of namespaces it has no handlers for
	// without a word (counted in realtime_worker_signals_total with result
	// "not_served"), and answers a handshake's authorization request only
	// if it has an OnAuthorize hook. Workers of one app must serve the same
	// namespaces. Default: "" (group bus.GroupName, and a worker serves
	// the whole cluster: signals of namespaces it has no handlers for are
	// counted "unhandled", and it answers every authorization request).
	App string
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
	// MaxRooms bounds the rooms one session is in (EmitterConfig.MaxRooms;
	// cmd/worker's -max-rooms). Default: session.DefaultMaxRooms (1024).
	MaxRooms int
	// MaxRoomBytes bounds a room name (EmitterConfig.MaxRoomBytes;
	// cmd/worker's -max-room-bytes). Default: session.DefaultMaxRoomBytes
	// (256).
	MaxRoomBytes int
	// RetryBackoff is the pause before a failed signal is handled again.
	// Default: bus.DefaultRetryBackoff (200ms).
	RetryBackoff time.Duration
	// MaxRetryBackoff, when larger than RetryBackoff, doubles the pause
	// with each failed attempt of a signal, up to it (see
	// bus.ConsumerConfig.MaxRetryBackoff). Default 0: a fixed pause.
	MaxRetryBackoff time.Duration
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
	batch      BatchHandler
	batchNS    map[string]bool // the namespaces batch serves (OnBatch); nil: all

	// Rate-limited log lines (ratelog.go), one limiter per reason, each
	// letting a line through per logEvery (defaultLogEvery; tests set it).
	inputLog [numLogReasons]ratelog.Limiter
	drainLog ratelog.Limiter // failed outbox drains (drainLoop)
	logEvery time.Duration
	// Rooms refused by the per-session bounds: logged at most once per
	// 10 s, counted always.
	roomLog rate.Sometimes

	// groupLags holds, per consumer group and partition, the signals
	// waiting for it when this worker last trimmed the partition
	// (bus.ConsumerConfig.OnGroupLag), for WaitingNote.
	lagMu     sync.Mutex
	groupLags map[string]map[int]groupLag

	// What this worker serves, published from Run on (serves.go), and
	// its peers' descriptions, parsed.
	serves    atomic.Pointer[string]
	peersMu   sync.Mutex
	peerCache map[string]*served
}

// groupLag is one OnGroupLag report.
type groupLag struct {
	n  int64
	at time.Time
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
	if cfg.Keys.IsZero() {
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
		Emitter:      NewEmitter(rdb, EmitterConfig{Keys: cfg.Keys, Node: cfg.Name, MaxRooms: cfg.MaxRooms, MaxRoomBytes: cfg.MaxRoomBytes}),
		cfg:          cfg,
		log:          cfg.Logger.With("worker", cfg.Name),
		replyChannel: cfg.Keys.ReplyChannel(cfg.Name),
		metrics:      cfg.Metrics,
		namespaces:   map[string]*Namespace{},
		pending:      map[pendingKey]*pendingAck{},
		logEvery:     defaultLogEvery,
		roomLog:      rate.Sometimes{First: 1, Interval: 10 * time.Second},
	}
	m := cfg.Metrics
	w.consumer = bus.NewConsumer(rdb, bus.ConsumerConfig{
		Keys: cfg.Keys, Name: cfg.Name, Group: w.group(), LeaseTTL: cfg.LeaseTTL, MaxAttempts: cfg.MaxAttempts, Logger: cfg.Logger,
		RetryBackoff: cfg.RetryBackoff, MaxRetryBackoff: cfg.MaxRetryBackoff,
		OnDeadLetter: func(_ int, s bus.Signal) {
			m.DeadLetters.Inc()
			w.answerDeadLettered(s)
		},
		OnReclaim: func(_ int, n int) { m.Reclaimed.Add(float64(n)) },
		OnReread:  func(_ int, n int) { m.Reread.Add(float64(n)) },
		OnOwned:   func(n int) { m.Partitions.Set(float64(n)) },
		OnLag: func(p int, pending, lag int64) {
			m.Pending.WithLabelValues(strconv.Itoa(p)).Set(float64(pending))
			m.Lag.WithLabelValues(strconv.Itoa(p)).Set(float64(lag))
		},
		OnBacklogTrimmed: func(_ int, group string, n int64) {
			m.BacklogTrimmed.WithLabelValues(group).Add(float64(n))
		},
		OnGroupLag: w.groupLagged,
		OnHandOver: func(int) { m.Handovers.Inc() },
		Serves: func() string {
			if s := w.serves.Load(); s != nil {
				return *s
			}
			return ""
		},
	})
	return w
}

// group is the consumer group of the worker's app (Config.App).
func (w *Worker) group() string {
	if w.cfg.App == "" {
		return bus.GroupName
	}
	return w.cfg.App
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

// groupLagged records that n signals of partition p wait for group
// (bus.ConsumerConfig.OnGroupLag; -1: unknown).
func (w *Worker) groupLagged(p int, group string, n int64) {
	w.metrics.GroupLag.WithLabelValues(group, strconv.Itoa(p)).Set(float64(n))
	w.lagMu.Lock()
	defer w.lagMu.Unlock()
	if w.groupLags == nil {
		w.groupLags = map[string]map[int]groupLag{}
	}
	if w.groupLags[group] == nil {
		w.groupLags[group] = map[int]groupLag{}
	}
	w.groupLags[group][p] = groupLag{n: n, at: time.Now()}
}

// waitingFresh is how recent a group lag report must be for WaitingNote
// (partitions are trimmed every 10 s; older reports are of partitions this
// worker no longer owns).
const waitingFresh = 30 * time.Second

// WaitingNote says, one line per other app (consumer group), how many
// signals of the partitions this worker owns wait for it, when some do:
// "signals waiting for app chat: 1234 (none read them: its workers are
// stopped, or too slow)". It is "" when none wait. cmd/worker adds it to
// /readyz, which stays ready: the wait is the other app's, bounded by
// bus.DefaultMaxBacklog.
func (w *Worker) WaitingNote() string {
	w.lagMu.Lock()
	defer w.lagMu.Unlock()
	var lines []string
	for group, parts := range w.groupLags {
		if group == w.group() {
			continue
		}
		var total int64
		for _, l := range parts {
			if l.n > 0 && time.Since(l.at) < waitingFresh {
				total += l.n
			}
		}
		if total > 0 {
			lines = append(lines, fmt.Sprintf("signals waiting for app %s: %d (none read them: its workers are stopped, or too slow)\n", group, total))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
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
// releases its partitions and returns nil: a clean shutdown is no error, so
// a main that does `if err := w.Run(ctx); err != nil { log.Fatal(err) }`
// with a signal.NotifyContext exits 0 on SIGTERM. It returns an error when
// it cannot start (Redis unreachable) or its consumer fails.
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
	if w.store.Config().PerPartition {
		// Only a spread Redis Cluster has outboxes to drain: elsewhere a
		// commit applies every effect at once (commit_node.lua).
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.drainLoop(ctx)
		}()
	}
	serves := w.describe()
	w.serves.Store(&serves)
	w.log.Info("worker started")
	err := w.consumer.Run(ctx, w.handleAndCommit)
	wg.Wait()
	w.log.Info("worker stopped")
	return err
}

// DefaultOutboxDrainEvery is how often a worker drains the outboxes of the
// partitions it owns (drainLoop).
const DefaultOutboxDrainEvery = time.Second

// drainLoop applies, every DefaultOutboxDrainEvery until ctx ends, what
// the outboxes of the partitions this worker owns still hold (on a spread
// Redis Cluster, session.Config.PerPartition; elsewhere there are none): effects on
// other partitions that the commit writing them did not get applied (a
// worker killed between the steps, a Redis error; docs/redis.md, "Effects
// across partitions"). Failures are logged at most once a minute.
func (w *Worker) drainLoop(ctx context.Context) {
	t := time.NewTicker(DefaultOutboxDrainEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range w.consumer.Owned() {
			n, err := w.store.DrainOutbox(ctx, p)
			waiting := w.metrics.OutboxWaiting.WithLabelValues(strconv.Itoa(p))
			if err == nil {
				w.metrics.OutboxDrained.Add(float64(n))
				waiting.Set(0)
			} else {
				waiting.Set(float64(n))
			}
			if err != nil && ctx.Err() == nil {
				if ok, skipped := w.drainLog.Allow(time.Now(), time.Minute); ok {
					w.log.Warn("outbox not drained; trying again", "partition", p, "err", err, "unlogged", skipped)
				}
			}
		}
	}
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
	if h == nil && w.cfg.App != "" {
		return nil // the app with the hook answers (Config.App)
	}
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
	// Any of the gateway's route streams would do: it reads them all.
	_, err := bus.AppendRoute(ctx, w.rdb, w.keys.RouteStream(w.keys.PartitionOf(sig.SID), node), msg.String())
	return err
}

func safeAuthorize(ctx context.Context, h AuthorizeHandler, hs session.Handshake) (a Authorization, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("authorize hook panicked: %v", r)
		}
	}()
	return h(ctx, hs)
}

// answerDeadLettered answers the data ack a dead-lettered event or
// message asked for, 6::<ns>:<id>+[{"error":"dead_lettered"}] (the shape
// the gateway gives a rejected packet's ack), so that the client's
// callback does not wait forever for a handler that gave up. It is best
// effort: the signal is acknowledged already, and a failed delivery is
// logged. A plain ack (no "+") was answered by the gateway on arrival.
func (w *Worker) answerDeadLettered(s bus.Signal) {
	if !s.HasID || !s.AckData || s.SID == "" {
		return
	}
	data := strconv.AppendUint(nil, s.MsgID, 10)
	data = append(data, `+[{"error":"dead_lettered"}]`...)
	packet := string(protocol.Encode(protocol.Packet{Type: protocol.Ack, Endpoint: s.NS, Data: data}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.store.Apply(ctx, session.Commit{Effects: []session.Effect{session.DeliverEffect(s.SID, packet)}}); err != nil {
		w.log.Warn("the ack of a dead-lettered signal was not answered; its client's callback waits", "sid", session.LogSID(s.SID), "err", err)
	}
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

// SlowBatchWait is how long a worker waits for every partition's handlers
// of one read before it commits those that are done, in one script: the
// batch of a partition whose handlers take longer (a slow handler, an HTTP
// app that answers slowly) is committed on its own when they finish
// (bus.Outcome.Later), so that it holds back its own partition only; the
// worker goes on reading and handling the others meanwhile.
const SlowBatchWait = 20 * time.Millisecond

// batchResult is what the handlers of one partition's batch did.
type batchResult struct {
	handled  []bus.Signal // the signals of commits
	commits  []session.Commit
	recs     []*recorder
	failed   error
	handOver string // the worker that serves the signal after the commits
}

// handleAndCommit runs the handlers of each partition's batch in order (the
// partitions concurrently) and commits every effect with the batches'
// acknowledgements in one script; a partition not done within
// SlowBatchWait is committed on its own when it is (bus.Outcome.Later).
func (w *Worker) handleAndCommit(ctx context.Context, batches []bus.Batch) []bus.Outcome {
	results := make([]batchResult, len(batches))
	done := make(chan int, len(batches))
	for i := range batches {
		go func() {
			results[i] = w.handleBatch(ctx, batches[i])
			done <- i
		}()
	}
	finished := make([]bool, len(batches))
	timer := time.NewTimer(SlowBatchWait)
	defer timer.Stop()
wait:
	for range len(batches) {
		select {
		case i := <-done:
			finished[i] = true
		case <-timer.C:
			break wait
		}
	}
	var ready []int
	later := map[int]chan bus.Outcome{}
	outcomes := make([]bus.Outcome, len(batches))
	for i, f := range finished {
		if f {
			ready = append(ready, i)
		} else {
			later[i] = make(chan bus.Outcome, 1)
			outcomes[i].Later = later[i]
		}
	}
	w.commit(ctx, results, ready, outcomes)
	if len(later) > 0 {
		go func() {
			for range len(later) {
				i := <-done
				one := make([]bus.Outcome, len(batches))
				w.commit(ctx, results, []int{i}, one)
				later[i] <- one[i]
			}
		}()
	}
	return outcomes
}

// handleBatch runs the handlers of one partition's batch, in order, up to
// the first that fails.
func (w *Worker) handleBatch(ctx context.Context, b bus.Batch) (r batchResult) {
	defer func() { r.handled = b.Signals[:len(r.commits)] }() // one commit per signal, in order
	stream := w.keys.Stream(b.Partition)
	w.mu.Lock()
	bh, bns := w.batch, w.batchNS
	w.mu.Unlock()
	if bh != nil {
		r.commits, r.recs, r.failed = w.runBatch(ctx, bh, bns, stream, b.Signals)
		if r.handOver = handOverOf(r.failed); r.handOver != "" {
			r.failed = nil
		}
		return r
	}
	r.commits = make([]session.Commit, 0, len(b.Signals))
	joins := map[string]map[string]bool{} // the batch's joins, for Socket.Join's bound
	for _, sig := range b.Signals {
		rec := &recorder{joins: joins}
		if err := w.dispatch(ctx, sig, rec); err != nil {
			w.drop(rec)
			if r.handOver = handOverOf(err); r.handOver == "" {
				r.failed = fmt.Errorf("signal %s (%s %q): %w", sig.ID, sig.Kind, sig.Name, err)
			}
			break
		}
		r.commits = append(r.commits, session.Commit{Stream: stream, Group: w.group(), ID: sig.ID, Effects: rec.effects})
		r.recs = append(r.recs, rec)
	}
	return r
}

// commit commits the handled signals of results[i] for each i of which,
// in one script, and sets outcomes[i].
func (w *Worker) commit(ctx context.Context, results []batchResult, which []int, outcomes []bus.Outcome) {
	var all []session.Commit
	for _, i := range which {
		all = append(all, results[i].commits...)
	}
	if len(all) > 0 {
		if _, err := w.store.Apply(ctx, all...); err != nil {
			for _, i := range which {
				for _, rec := range results[i].recs {
					w.drop(rec)
				}
				// Whether Redis applied it is unknown: the consumer
				// re-reads what is still pending (bus.Outcome).
				outcomes[i] = bus.Outcome{Err: fmt.Errorf("%w: %w", bus.ErrCommitFailed, err)}
			}
			return
		}
	}
	for _, i := range which {
		r := results[i]
		outcomes[i] = bus.Outcome{N: len(r.commits), Err: r.failed, HandOver: r.handOver}
		w.countDisconnects(r.handled)
	}
}

// countDisconnects counts the committed disconnect signals by reason, and
// logs those of sessions ended for an overflow (rate-limited): the one
// trace of a polling session whose mailbox overflowed, which Redis ended
// while no gateway served it (docs/redis.md, "Polling delivery").
func (w *Worker) countDisconnects(sigs []bus.Signal) {
	for _, s := range sigs {
		if s.Kind != bus.KindDisconnect {
			continue
		}
		w.metrics.Disconnects.WithLabelValues(string(s.Reason)).Inc()
		if s.Reason == bus.ReasonOverflow && s.NS == "" {
			w.logLimited(logOverflow, slog.LevelInfo, "session ended: its client did not take what was sent to it (mailbox or send queue overflow; counted in realtime_worker_disconnects_total{reason=\"overflow\"})",
				"sid", session.LogSID(s.SID))
		}
	}
}

// drop forgets the callbacks a failed handler registered.
func (w *Worker) drop(rec *recorder) {
	for _, k := range rec.acks {
		w.take(k)
	}
}

// UnhandledAck is the answer a worker gives a client that asked for a
// data ack (a callback) on a message, JSON message or event that no handler
// of the worker takes: the callback's one argument is {"error":"unhandled"},
// as the gateway answers input it rejects ({"error":"<reason>"}). So a
// client's callback never waits forever for an event nobody serves. An app
// that wants another answer registers Namespace.OnAnyEvent.
const UnhandledAck = `[{"error":"unhandled"}]`

// unhandled counts, logs (rate-limited, see logLimited) and answers a
// message, JSON message or event that no handler of this worker takes: in a
// namespace it does not serve (served false), or with no handler for its
// kind or name. Its signal is acknowledged with the answer, if the client
// asked for one (UnhandledAck), as its one effect: no worker owning the
// partition would handle it either. It is never counted "ok".
func (w *Worker) unhandled(sig bus.Signal, rec *recorder, served bool) error {
	w.metrics.Signals.WithLabelValues(string(sig.Kind), "unhandled").Inc()
	reason := logNoHandler
	if !served {
		reason = logNoNamespace
	}
	w.logLimited(reason, slog.LevelWarn, "signal with no handler (counted in realtime_worker_signals_total{result=\"unhandled\"})",
		"kind", sig.Kind, "namespace", sig.NS, "event", logName(sig.Name), "answered", sig.HasID && sig.AckData)
	if !sig.HasID || !sig.AckData {
		return nil // no callback waits (a plain ack id was answered by the gateway)
	}
	s := &Socket{id: sig.SID, ns: sig.NS, em: w.Emitter, w: w, rec: rec}
	return s.deliver(protocol.Packet{Type: protocol.Ack, Data: protocol.AppendAck(nil, sig.MsgID, []byte(UnhandledAck), true)})
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
	if sig.Kind != bus.KindAck && (ns == nil || !ns.takes(sig)) {
		// A rolling deploy: another worker of the app may serve it.
		if to := w.handOverTo(sig); to != "" {
			return &handOverError{to: to}
		}
	}
	if sig.Kind == bus.KindAck || (ns == nil && (sig.Kind == bus.KindConnect || sig.Kind == bus.KindDisconnect)) {
		w.metrics.Signals.WithLabelValues(kind, "ignored").Inc()
		return nil
	}
	if ns == nil && w.cfg.App != "" {
		// Another app's namespace (Config.App).
		w.metrics.Signals.WithLabelValues(kind, "not_served").Inc()
		return nil
	}
	if ns == nil {
		return w.unhandled(sig, rec, false)
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
			err = w.unhandled(sig, rec, true)
			return
		}
		w.metrics.HandlerSeconds.WithLabelValues(kind, event).Observe(took.Seconds())
		result := "ok"
		var rejected error
		switch {
		case errors.Is(err, ErrRejected):
			// Invalid client input, answered by the handler: commit what
			// it did and move on.
			result, rejected, err = "rejected", err, nil
			w.logLimited(logRejected, slog.LevelInfo, "handler rejected client input (counted in realtime_worker_signals_total{result=\"rejected\"})",
				"kind", kind, "namespace", sig.NS, "event", logName(sig.Name), "err", rejected)
		case err != nil:
			result = "error"
			w.log.Warn("handler failed", "kind", kind, "event", logName(sig.Name), "sid", session.LogSID(sig.SID), "err", err)
		}
		if took > w.cfg.HandlerTimeout {
			w.metrics.Overruns.Inc()
			w.log.Warn("handler overran its deadline", "kind", kind, "event", logName(sig.Name), "took", took, "deadline", w.cfg.HandlerTimeout)
		}
		w.metrics.Signals.WithLabelValues(kind, result).Inc()
	}()
	handled, err = ns.callHandler(hctx, s, sig)
	return err
}

// AdminHandler serves the worker's admin endpoints (pkg/admin): /metrics
// from reg (give the worker Config.Metrics: NewMetrics(reg) so that its
// measurements are there), /healthz, and /readyz: CheckReady, which waits
// a rebalance period and a half after start so that the other workers of
// the app have read what this one serves (a rolling deploy), followed by
// WaitingNote. Serve it on an address clients do not reach.
func (w *Worker) AdminHandler(reg *prometheus.Registry) http.Handler {
	return admin.Handler(reg, w.CheckReady, w.WaitingNote, false)
}
