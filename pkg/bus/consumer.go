package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Consumer defaults (ConsumerConfig); pkg/worker's Config and cmd/worker's
// flags use DefaultLeaseTTL and DefaultMaxAttempts.
const (
	// DefaultLeaseTTL is ConsumerConfig.LeaseTTL's default.
	DefaultLeaseTTL = 3 * time.Second
	// DefaultBatch is ConsumerConfig.Batch's default, in entries.
	DefaultBatch = 100
	// DefaultBlock is ConsumerConfig.Block's default.
	DefaultBlock = time.Second
	// DefaultMaxAttempts is ConsumerConfig.MaxAttempts' default.
	DefaultMaxAttempts = 5
	// DefaultRetryBackoff is ConsumerConfig.RetryBackoff's default.
	DefaultRetryBackoff = 200 * time.Millisecond
	// DefaultMaxBacklog is ConsumerConfig.MaxBacklog's default, in entries
	// per partition: as route streams and dead-letter streams are capped.
	DefaultMaxBacklog = 100_000
)

// ConsumerConfig configures a Consumer. Zero fields take the defaults.
type ConsumerConfig struct {
	// Keys names the streams. Default: NewKeys("", 0).
	Keys Keys
	// Name is this consumer's id, unique among workers. Required.
	Name string
	// Group is the consumer group it reads the partitions through, with the
	// other workers of its app (ValidGroup; the group's leases and worker
	// list are Keys.GroupLease and Keys.GroupWorkers). Each group gets every
	// signal: workers of different apps use different groups. Default:
	// GroupName.
	Group string
	// LeaseTTL is how long a partition lease lasts without renewal; leases
	// are renewed and the share recomputed every LeaseTTL/3 (at least every
	// second). A worker that dies loses its partitions after about LeaseTTL;
	// one that stops releases them at once. Default: DefaultLeaseTTL (3s).
	LeaseTTL time.Duration
	// Batch is the most entries read at once from one partition. Default:
	// DefaultBatch (100).
	Batch int
	// Block is how long one read waits for new entries. Default:
	// DefaultBlock (1s).
	Block time.Duration
	// MaxAttempts is how many times an entry is handled before it goes to
	// the dead-letter stream. Default: DefaultMaxAttempts (5).
	MaxAttempts int
	// RetryBackoff is the pause before handling a failed entry again.
	// Default: DefaultRetryBackoff (200ms).
	RetryBackoff time.Duration
	// MaxRetryBackoff, when larger than RetryBackoff, makes the pause
	// before a failed entry's next attempt double with each of its failed
	// attempts (RetryBackoff, 2×, 4×, …) up to MaxRetryBackoff. Default 0:
	// the pause is always RetryBackoff.
	MaxRetryBackoff time.Duration
	// Logger receives the consumer's logs. Default: slog.Default().
	Logger *slog.Logger
	// Hooks for metrics; each may be nil. OnDeadLetter is told of each
	// signal moved to the dead-letter stream whose XACK acknowledged it
	// (not one another consumer committed meanwhile; s holds only its ID
	// for an entry that did not parse).
	OnDeadLetter func(partition int, s Signal)
	OnReclaim    func(partition int, n int)
	// OnReread is told how many of this consumer's own pending entries of a
	// partition it read again after a failed read or commit (see Consumer).
	OnReread func(partition int, n int)
	OnOwned  func(n int)
	OnLag    func(partition int, pending int64, lag int64)
	// OnGroupLag is told, for each consumer group of a partition this
	// consumer trims (every app's, its own included), how many of the
	// partition's signals wait to be delivered to that group (-1 if Redis
	// cannot tell): an app whose workers are all stopped shows here, from
	// the workers of the other apps.
	OnGroupLag func(partition int, group string, lag int64)
	// OnBacklogTrimmed is told that about n signals of a partition were
	// trimmed before group read them (MaxBacklog).
	OnBacklogTrimmed func(partition int, group string, n int64)
	// Serves, if set, returns what this consumer's handler serves, which
	// it publishes for the other workers of its group with every heartbeat
	// (Keys.GroupServes; opaque to the bus: pkg/worker writes the JSON
	// docs/redis.md describes, and reads its peers' with Peers to choose a
	// worker to hand a partition over to, Outcome.HandOver). It is called at
	// every rebalance. Default nil: nothing published, so no worker hands a
	// partition over to this one.
	Serves func() string
	// OnHandOver is told that this consumer handed partition over
	// (Outcome.HandOver).
	OnHandOver func(partition int)
	// MaxBacklog bounds, in entries, how far behind the newest signal of a
	// partition a consumer group may fall (an app whose workers are all
	// stopped): older entries are trimmed, reported to OnBacklogTrimmed and
	// logged. Default: DefaultMaxBacklog.
	MaxBacklog int
}

func (c *ConsumerConfig) defaults() {
	if c.Keys.IsZero() {
		c.Keys = NewKeys("", 0)
	}
	if c.Group == "" {
		c.Group = GroupName
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.Block <= 0 {
		c.Block = DefaultBlock
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = DefaultMaxBacklog
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Batch is a run of one partition's signals, in stream order.
type Batch struct {
	Partition int
	Signals   []Signal
}

// Outcome is what a Handler did with one Batch: N entries, from the start,
// were handled and committed (acknowledged); if N < len(Signals), Err says
// why entry N failed, and that entry is handled again (up to MaxAttempts)
// before anything after it in its partition.
//
// An Err wrapping ErrCommitFailed says the commit itself failed, so
// whether Redis applied it is unknown: the consumer forgets the rest of the
// batch and reads its own pending entries again (those the commit did
// acknowledge are no longer among them) before anything new. A commit that
// failed because Redis did not answer or refused for a passing state (a
// dropped or refused connection, a timeout, LOADING, READONLY, MASTERDOWN,
// OOM, ...) is not counted as an attempt: the signal is not at fault, and
// is never dead-lettered for it.
//
// HandOver, when not empty and N < len(Signals), names a live worker of the
// group that serves entry N while this one does not (a rolling deploy:
// see handover.go): entry N and those after it are left pending, not
// attempted, and the partition goes to that worker, which claims them.
//
// Later, when not nil, says the batch is still being handled (a slow
// handler), and its Outcome comes on Later, once: until then the partition
// is neither read nor given another batch, and it is not let go (a
// partition released to another worker keeps its lease meanwhile), so its
// signals stay in order and with one handler at a time, while the consumer
// goes on reading and handing out the other partitions. The other fields
// are then ignored. A stopping consumer waits for it before it releases
// its leases, renewing none meanwhile, as it waits for a handler that has
// not returned; and Check reports the consumer stalled while a batch has
// been in its handler as long as a read loop that does not move.
type Outcome struct {
	N        int
	Err      error
	HandOver string
	Later    <-chan Outcome
}

// ErrCommitFailed is wrapped (with the cause) by a Handler's Outcome.Err
// when committing the batch failed; see Outcome.
var ErrCommitFailed = errors.New("bus: commit failed")

// ErrNotAttempted is wrapped by a Handler's Outcome.Err when the signal
// could not even be given to the app (the HTTP bridge's app refused its
// connection, or refused the request's signature: a wrong secret after a
// deploy). The signal is not at fault: it is not counted as an attempt, so
// it is never dead-lettered for it, and it is tried again after
// RetryBackoff, doubling while it keeps failing so, up to
// NotAttemptedMaxBackoff; the signals after it in its partition wait.
var ErrNotAttempted = errors.New("bus: not attempted")

// NotAttemptedMaxBackoff caps the pause between tries of a signal whose
// handler keeps failing with ErrNotAttempted.
const NotAttemptedMaxBackoff = 5 * time.Second

// Handler handles the batches of one read, each of a different partition,
// and returns one Outcome per batch, in the same order. The batches of
// different partitions are independent: a handler may run them
// concurrently and commit them together, and may return before a slow one
// is done with it (Outcome.Later).
type Handler func(ctx context.Context, batches []Batch) []Outcome

// Consumer shares the partition streams out among the workers running one,
// and feeds each owned partition's signals, in order, to a Handler. One loop
// reads every owned partition with a single XREADGROUP and hands the
// handler everything that arrived, so a busy worker costs a few Redis round
// trips per read, not per signal.
//
// Order after a fault. XREADGROUP ">" moves entries into this consumer's
// pending entries list (PEL) when Redis runs it, whether or not the reply
// arrives: a read whose connection dropped or timed out (a Redis stall
// longer than Block + 10 s, go-redis's read timeout for a blocking read)
// can leave entries delivered here that the loop never saw. A commit that
// failed may or may not have acknowledged its entries. So the loop keeps,
// per partition, what it must do before reading anything new:
//
//   - on taking a partition (at start, or from another worker), claim every
//     entry pending in the group, this consumer's own included, with
//     XAUTOCLAIM from 0, and handle them first; a claim that fails is
//     retried before the partition is read;
//   - after a failed read of the partition, a failed commit (ErrCommitFailed)
//     or a failed dead-lettering, forget what is in hand and read this
//     consumer's own PEL again (XREADGROUP with id 0, then from the last id
//     read while pages come back full) before ">";
//   - read nothing while the leases may have lapsed: when the last
//     successful renewal is older than LeaseTTL (Redis stalled or away),
//     the loop waits for the next one, so that after a stall a worker does
//     not read a partition another worker took meanwhile.
//
// With these, a session's signals are handled in stream order after a
// stall, a dropped connection or a reconnect. Delivery stays at least once:
// a signal whose commit failed is handled again unless its commit was in
// fact applied, and two workers can both handle an entry when a lease
// moves while its holder is cut off from Redis; commits apply their
// effects only if their XACK acknowledged the entry (pkg/session's commit
// script), so effects are applied once.
type Consumer struct {
	rdb redis.UniversalClient
	cfg ConsumerConfig
	log *slog.Logger

	lastRebalance  atomic.Int64                      // unix ms of the last successful rebalance
	firstRebalance atomic.Int64                      // unix ms of the first one (Check's start grace)
	leaseUntil     atomic.Int64                      // unix ms until which the leases renewed last hold
	beat           atomic.Int64                      // unix ms when the read loop last went round
	heldSince      atomic.Int64                      // unix ms since the oldest batch still being handled was given (Outcome.Later); 0: none
	wake           chan struct{}                     // the owned set changed: the loop looks again
	dials          atomic.Uint64                     // connections the client dialed (dialCounter)
	trimLogs       sync.Map                          // group -> *rate.Sometimes (backlogTrimmed)
	notTriedLog    *rate.Sometimes                   // ErrNotAttempted failures, once per 10 s
	peers          atomic.Pointer[map[string]string] // Peers, from the last rebalance

	// eachPartition is set on a Redis Cluster whose partitions are in
	// different hash slots, where one XREADGROUP may not name streams of
	// two slots: each partition is read on its own (readEach), at most one
	// read in flight each, their results coming back on results.
	eachPartition bool
	inFlight      map[int]bool // partitions with a read in flight (the loop's goroutine only)
	results       chan readResult

	// mu guards the fields below; it is never held across a Redis round
	// trip.
	mu        sync.Mutex
	owned     map[int]*part // partitions being handled
	releasing map[int]bool  // partitions finishing their batch before their lease is released
	stopped   bool          // leave has run: nothing is taken any more
}

// part is one owned partition in the read loop: closing stop makes the loop
// finish the batch in hand (never abandoning entries Redis already
// delivered to this consumer), drop the partition and close done.
type part struct {
	stop chan struct{}
	done chan struct{}
}

// NewConsumer returns a consumer; Run starts it.
func NewConsumer(rdb redis.UniversalClient, cfg ConsumerConfig) *Consumer {
	cfg.defaults()
	c := &Consumer{rdb: rdb, cfg: cfg, log: cfg.Logger.With("worker", cfg.Name),
		owned: map[int]*part{}, releasing: map[int]bool{}, wake: make(chan struct{}, 1),
		notTriedLog: &rate.Sometimes{First: 1, Interval: 10 * time.Second}}
	rdb.AddHook(dialCounter{&c.dials})
	if Spread(rdb, cfg.Keys) {
		c.eachPartition = true
		c.inFlight = map[int]bool{}
		c.results = make(chan readResult, cfg.Keys.Partitions())
	}
	return c
}

// Spread reports whether rdb is a Redis Cluster client and the partitions
// of keys are in different hash slots: then no command (MULTI/EXEC,
// XREADGROUP of several streams, script) may name two partitions' keys.
// Otherwise every partition is on one node (one Redis, Sentinel, or a
// cluster whose prefix holds a hash tag), and one command may name them
// all.
func Spread(rdb redis.UniversalClient, keys Keys) bool {
	_, cluster := rdb.(*redis.ClusterClient)
	return cluster && !oneSlot(keys)
}

// oneSlot reports whether every partition stream of keys hashes to one
// slot (a prefix holding a hash tag).
func oneSlot(keys Keys) bool {
	for p := range keys.Partitions() {
		if Slot(keys.Stream(p)) != Slot(keys.Stream(0)) {
			return false
		}
	}
	return true
}

func (c *Consumer) membersKey() string    { return c.cfg.Keys.GroupWorkers(c.cfg.Group) }
func (c *Consumer) leaseKey(p int) string { return c.cfg.Keys.GroupLease(c.cfg.Group, p) }

// Group returns the consumer group it reads through (ConsumerConfig.Group).
func (c *Consumer) Group() string { return c.cfg.Group }

// renewScript extends a lease if this consumer owns it, or takes it if free.
var renewScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not owner then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`)

// extendScript extends a lease if this consumer owns it, and never takes
// one: for partitions finishing their batch before they are released.
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// releaseScript deletes a lease if this consumer owns it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Run takes its share of partitions and handles their signals until ctx
// ends; then it finishes the batches in hand, releases its leases and
// returns.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	loopDone := make(chan struct{})
	stopLoop := make(chan struct{})
	go func() {
		defer close(loopDone)
		c.loop(stopLoop, h)
	}()
	defer func() {
		c.leave(stopLoop, loopDone)
	}()
	// Rebalance at least every second, so partitions a leaving worker
	// released move within a second whatever the lease lifetime.
	tick := time.NewTicker(c.rebalanceEvery())
	defer tick.Stop()
	for {
		if err := c.rebalance(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("rebalance failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Owned returns the partitions this consumer owns now.
func (c *Consumer) Owned() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int, 0, len(c.owned))
	for p := range c.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// rebalance renews membership, computes this consumer's share (partition p
// goes to the live worker of rank p % n), takes and renews leases for it,
// and releases partitions outside it.
//
// c.mu is never held across a Redis round trip (the read loop, Owned and
// Check take it): the share is decided under the lock, the leases are
// renewed outside it, and the answers are applied under the lock again, to
// partitions whose state did not change meanwhile.
func (c *Consumer) rebalance(ctx context.Context) error {
	now := time.Now().UnixMilli()
	ttl := c.cfg.LeaseTTL.Milliseconds()
	servesKey := c.cfg.Keys.GroupServes(c.cfg.Group)
	pipe := c.rdb.Pipeline()
	pipe.ZAdd(ctx, c.membersKey(), redis.Z{Score: float64(now), Member: c.cfg.Name})
	pipe.ZRemRangeByScore(ctx, c.membersKey(), "-inf", strconv.FormatInt(now-3*ttl, 10))
	if c.cfg.Serves != nil {
		if s := c.cfg.Serves(); s != "" {
			pipe.HSet(ctx, servesKey, c.cfg.Name, s)
		}
	}
	// What the workers serve is read before the members, so that a
	// description read has its worker in the members read after it.
	serves := pipe.HGetAll(ctx, servesKey)
	handovers := pipe.HGetAll(ctx, c.cfg.Keys.Handovers(c.cfg.Group))
	members := pipe.ZRangeWithScores(ctx, c.membersKey(), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bus: membership: %w", err)
	}
	known := map[string]bool{}
	live := map[string]bool{}
	for _, m := range members.Val() {
		name, _ := m.Member.(string)
		known[name] = true
		if int64(m.Score) >= now-ttl {
			live[name] = true
		}
	}
	peers := map[string]string{}
	var gone []string
	for name, s := range serves.Val() {
		switch {
		case !known[name]:
			gone = append(gone, name)
		case live[name] && name != c.cfg.Name:
			peers[name] = s
		}
	}
	c.peers.Store(&peers)
	want, stale := applyHandovers(share(slices.Collect(maps.Keys(live)), c.cfg.Name, c.cfg.Keys.Partitions()),
		c.cfg.Name, handovers.Val(), live, c.cfg.Keys.Partitions())
	if len(stale) > 0 || len(gone) > 0 {
		c.dropStale(ctx, stale, gone)
	}

	seen, changed := c.releaseUnwanted(want)
	c.extendReleasing(ctx, ttl)
	held, err := c.renewLeases(ctx, slices.Sorted(maps.Keys(seen)), ttl)
	if err != nil {
		if changed {
			c.wakeLoop()
		}
		return err
	}
	// The leases held now were renewed after now: they last at least
	// until now + ttl.
	if prev := c.leaseUntil.Swap(now + ttl); prev <= time.Now().UnixMilli() {
		changed = true // the loop may be waiting for this renewal
	}
	var acquired []int
	c.mu.Lock()
	for p, pt := range seen {
		if c.stopped || c.releasing[p] || c.owned[p] != pt {
			continue // changed during the round trip: the next rebalance decides
		}
		switch {
		case held[p] && pt == nil:
			c.owned[p] = &part{stop: make(chan struct{}), done: make(chan struct{})}
			changed = true
			acquired = append(acquired, p)
			c.log.Debug("partition acquired", "partition", p)
		case !held[p] && pt != nil:
			close(pt.stop) // someone else holds it now
			delete(c.owned, p)
			changed = true
			c.log.Warn("partition lease lost", "partition", p)
		}
	}
	owned := len(c.owned)
	c.mu.Unlock()
	if len(acquired) > 0 {
		// One line per rebalance, not one per partition (each is at debug).
		slices.Sort(acquired)
		c.log.Info("partitions acquired", "partitions", acquired, "owned", owned)
	}
	if changed {
		c.wakeLoop()
	}
	if c.cfg.OnOwned != nil {
		c.cfg.OnOwned(owned)
	}
	c.firstRebalance.CompareAndSwap(0, time.Now().UnixMilli())
	c.lastRebalance.Store(time.Now().UnixMilli())
	return nil
}

// rebalanceEvery is how often Run rebalances: LeaseTTL/3, at least every
// second.
func (c *Consumer) rebalanceEvery() time.Duration { return min(c.cfg.LeaseTTL/3, time.Second) }

// share returns the partitions, of n, that go to name among the live
// members: partition p goes to the member of rank p % len(members) in
// sorted order; none when name is not among them.
func share(members []string, name string, n int) []int {
	members = slices.Sorted(slices.Values(members))
	rank := slices.Index(members, name)
	if rank < 0 {
		return nil
	}
	var want []int
	for p := rank; p < n; p += len(members) {
		want = append(want, p)
	}
	return want
}

// releaseUnwanted stops every owned partition outside want and releases its
// lease once its batch in hand is done (in the background). It returns the
// wanted partitions whose leases to renew now, each with its entry in
// c.owned (nil: not owned), so the renewal's answer is applied only if that
// entry is still the same; and whether the owned set changed.
func (c *Consumer) releaseUnwanted(want []int) (seen map[int]*part, changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, pt := range c.owned {
		if slices.Contains(want, p) {
			continue
		}
		// Hand over gracefully: the lease is released only after the
		// batch in hand is done, so nothing is left pending here.
		close(pt.stop)
		delete(c.owned, p)
		c.releasing[p] = true
		changed = true
		go c.release(p, pt)
	}
	seen = make(map[int]*part, len(want))
	for _, p := range want {
		if !c.releasing[p] { // still finishing: renew nothing until it is released
			seen[p] = c.owned[p]
		}
	}
	return seen, changed
}

// release gives up partition p's lease once the read loop let go of it.
func (c *Consumer) release(p int, pt *part) {
	<-pt.done
	rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := releaseScript.Run(rctx, c.rdb, []string{c.leaseKey(p)}, c.cfg.Name).Err(); err != nil {
		c.log.Warn("lease release failed", "partition", p, "err", err)
	}
	c.mu.Lock()
	delete(c.releasing, p)
	c.mu.Unlock()
	c.log.Info("partition released", "partition", p)
}

// extendReleasing extends the leases of the partitions being released: the
// read loop may be in a blocking read of one (up to Block, which may be
// longer than what is left of the lease), and a lease that lapsed then
// would let another worker take the partition and claim its pending
// entries before that read delivers new ones here, where they would wait
// for the idle reclaim (reclaimIdle). Best effort: a lease not extended
// lapses as before.
func (c *Consumer) extendReleasing(ctx context.Context, ttl int64) {
	c.mu.Lock()
	ps := slices.Sorted(maps.Keys(c.releasing))
	c.mu.Unlock()
	if len(ps) == 0 {
		return
	}
	pipe := c.rdb.Pipeline()
	for _, p := range ps {
		// Eval: a pipeline cannot fall back from EvalSha on NOSCRIPT.
		extendScript.Eval(ctx, pipe, []string{c.leaseKey(p)}, c.cfg.Name, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Debug("leases of partitions being released not extended", "partitions", ps, "err", err)
	}
}

// renewLeases takes or extends the leases of partitions ps in one round
// trip (the caller holds no lock) and returns those this consumer holds
// now, until the next renewal.
func (c *Consumer) renewLeases(ctx context.Context, ps []int, ttl int64) (map[int]bool, error) {
	held := make(map[int]bool, len(ps))
	if len(ps) == 0 {
		return held, nil
	}
	cmds := make([]*redis.Cmd, len(ps))
	pipe := c.rdb.Pipeline()
	for i, p := range ps {
		cmds[i] = renewScript.EvalSha(ctx, pipe, []string{c.leaseKey(p)}, c.cfg.Name, ttl)
	}
	if _, err := pipe.Exec(ctx); redis.HasErrorPrefix(err, "NOSCRIPT") {
		pipe = c.rdb.Pipeline()
		for i, p := range ps {
			cmds[i] = renewScript.Eval(ctx, pipe, []string{c.leaseKey(p)}, c.cfg.Name, ttl)
		}
		_, _ = pipe.Exec(ctx)
	}
	for i, p := range ps {
		n, err := cmds[i].Int()
		if err != nil {
			return nil, fmt.Errorf("bus: lease %d: %w", p, err)
		}
		held[p] = n == 1
	}
	return held, nil
}

// wakeLoop tells the read loop the owned set changed.
func (c *Consumer) wakeLoop() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ErrStalled is wrapped by Check's errors.
var ErrStalled = errors.New("bus: consumer stalled")

// ErrStarting is wrapped by Check's error while the consumer has not yet
// been a member of its group for a rebalance period and a half: until then
// the other workers may not have read what it serves (ConsumerConfig.Serves),
// so in a rolling deploy a signal only it serves could still be counted
// unhandled by an old worker.
var ErrStarting = errors.New("bus: consumer starting")

// Check reports whether the consumer is making progress: it has been a
// member of its group for a rebalance period and a half (ErrStarting
// before), its last rebalance (membership and leases) is recent, and,
// when it owns partitions, its read loop went round recently (it turns at
// least once per Block, busy or idle) and no batch has been in its handler
// (Outcome.Later) for longer than the loop may stand still.
func (c *Consumer) Check() error {
	now := time.Now().UnixMilli()
	grace := (c.rebalanceEvery() * 3 / 2).Milliseconds()
	if first := c.firstRebalance.Load(); first == 0 || now-first < grace {
		return fmt.Errorf("%w: its group's other workers learn what it serves within %dms of its first heartbeat", ErrStarting, grace)
	}
	if last := c.lastRebalance.Load(); now-last > 2*c.cfg.LeaseTTL.Milliseconds() {
		return fmt.Errorf("%w: no successful rebalance for %dms", ErrStalled, now-last)
	}
	c.mu.Lock()
	owned := len(c.owned)
	c.mu.Unlock()
	limit := 3*c.cfg.Block.Milliseconds() + c.cfg.RetryBackoff.Milliseconds()*int64(c.cfg.MaxAttempts) + 10000
	if b := c.beat.Load(); owned > 0 && b != 0 && now-b > limit {
		return fmt.Errorf("%w: the read loop has not moved for %dms", ErrStalled, now-b)
	}
	if h := c.heldSince.Load(); h != 0 && now-h > limit {
		return fmt.Errorf("%w: a batch has been in its handler for %dms", ErrStalled, now-h)
	}
	return nil
}

// leave stops every partition after the batch in hand, stops the read loop,
// releases the leases and the membership, so the others take over at once.
func (c *Consumer) leave(stopLoop, loopDone chan struct{}) {
	c.mu.Lock()
	c.stopped = true
	for _, pt := range c.owned {
		close(pt.stop)
	}
	owned := c.owned
	c.owned = map[int]*part{}
	c.mu.Unlock()
	close(stopLoop)
	<-loopDone
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for p := range owned {
		_ = releaseScript.Run(ctx, c.rdb, []string{c.leaseKey(p)}, c.cfg.Name).Err()
	}
	_ = c.rdb.ZRem(ctx, c.membersKey(), c.cfg.Name).Err()
	c.log.Info("partitions released on shutdown", "count", len(owned))
	if c.cfg.OnOwned != nil {
		c.cfg.OnOwned(0)
	}
}

// reclaimIdle is how long an entry must have been pending with another
// consumer before the read loop takes it over (a safety net; a new owner
// takes every pending entry at once).
const reclaimIdle = 30 * time.Second

// loopPart is the read loop's state of one partition.
type loopPart struct {
	p           int
	pt          *part
	stream      string
	backlog     []Signal // delivered to this consumer, not yet committed
	retryAt     time.Time
	attempts    map[string]int
	notTried    int // ErrNotAttempted failures in a row (their pause)
	lastTrim    time.Time
	lastReclaim time.Time

	// What must happen before the partition is read with ">" (see
	// Consumer): claim is set until the takeover claim of every entry
	// pending in the group succeeded; reread while this consumer's own
	// pending entries are to be read again, from rereadFrom.
	claim      bool
	reread     bool
	rereadFrom string
	// redialed is set when the re-read was asked by a read during which
	// the client dialed (usually another goroutine's new connection, not
	// a failure): what it finds is logged at INFO, not WARN.
	redialed bool
	// later is the Outcome.Later of the batch still being handled, given
	// to the handler at laterSince.
	later      <-chan Outcome
	laterSince time.Time
}

// laterPoll bounds how long the loop waits (for its one blocking read, for
// the results of its per-partition reads, or idle) while a partition's
// batch is still being handled (Outcome.Later), so that the partition is
// read again within about that long of its handler finishing. The
// per-partition reads of a Redis Cluster keep their Block: they carry
// over from one turn to the next.
const laterPoll = 10 * time.Millisecond

// needReread makes the partition forget what it has in hand and read its
// pending entries again before anything new, from the first. It reports
// whether the partition was clean before.
func (lp *loopPart) needReread() bool {
	was := lp.reread
	lp.backlog = nil
	lp.reread, lp.rereadFrom, lp.redialed = true, "0", false
	return !was
}

// loop handles every owned partition until stop is closed: a new
// partition's entries pending from earlier owners first, then new ones,
// read from all partitions at once. Reads are bounded by Block and never
// abandoned half-way, so entries Redis delivered to this consumer are
// always handled here; a stopped partition is let go only between reads.
// After a failed read or commit, a partition's own pending entries are
// read again before new ones; nothing is read while the leases may have
// lapsed (see Consumer).
func (c *Consumer) loop(stop <-chan struct{}, h Handler) {
	ctx := context.Background()
	parts := map[int]*loopPart{}
	defer func() {
		for _, lp := range parts {
			if lp.later != nil {
				<-lp.later // its handler is still committing: let go after
			}
			close(lp.pt.done)
		}
	}()
	var streams []string
	var order []*loopPart
	lapsed := false // waiting for a lease renewal (logged once per wait)
	for {
		now := time.Now()
		c.beat.Store(now.UnixMilli())
		// Let go of stopped partitions; take up new ones.
		c.mu.Lock()
		owned := maps.Clone(c.owned)
		c.mu.Unlock()
		for _, lp := range parts {
			if lp.later == nil {
				continue
			}
			select {
			case o := <-lp.later:
				lp.later = nil
				if c.settle(ctx, lp, o, now) {
					c.log.Warn("commit failed; the signals still pending on this worker are read again before newer ones",
						"partitions", []int{lp.p}, "err", o.Err)
				}
			default:
			}
		}
		var held time.Time // the oldest batch still being handled
		for _, lp := range parts {
			if lp.later != nil && (held.IsZero() || lp.laterSince.Before(held)) {
				held = lp.laterSince
			}
		}
		if held.IsZero() {
			c.heldSince.Store(0)
		} else {
			c.heldSince.Store(held.UnixMilli())
		}
		for p, lp := range parts {
			if owned[p] != lp.pt && lp.later == nil {
				close(lp.pt.done)
				delete(parts, p)
			}
		}
		for p, pt := range owned {
			if _, ok := parts[p]; !ok {
				parts[p] = c.acquire(ctx, p, pt)
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		if until := c.leaseUntil.Load(); len(parts) > 0 && now.UnixMilli() >= until {
			// The last renewal is older than LeaseTTL: another worker may
			// hold these partitions now. Wait for the next renewal
			// (rebalance wakes the loop).
			if !lapsed {
				lapsed = true
				c.log.Warn("partition leases not renewed within their TTL (Redis stalled or away); reading nothing until they are",
					"partitions", len(parts), "since", time.UnixMilli(until))
			}
			c.idle(stop, c.cfg.Block)
			continue
		}
		if lapsed {
			lapsed = false
			c.log.Info("partition leases renewed; reading again", "partitions", len(parts))
		}
		// Read the partitions with nothing in hand; the others wait for
		// their retry.
		streams, order = streams[:0], order[:0]
		block := c.cfg.Block
		holding := false // a batch is still being handled: look again within laterPoll
		for _, lp := range parts {
			if lp.later != nil {
				holding = true
				continue
			}
			if len(lp.backlog) > 0 || now.Before(lp.retryAt) {
				block = min(block, max(0, time.Until(lp.retryAt)))
				continue
			}
			if lp.claim {
				c.takeOver(ctx, lp)
				if len(lp.backlog) > 0 {
					block = 0
				}
				continue
			}
			if !lp.reread && now.Sub(lp.lastReclaim) > reclaimIdle/2 {
				lp.lastReclaim = now
				got, err := c.reclaim(ctx, lp.stream, reclaimIdle)
				switch {
				case err != nil:
					// What it claimed is pending here now.
					lp.needReread()
				case len(got) > 0:
					c.log.Warn("reclaimed signals idle with another consumer", "partition", lp.p, "count", len(got))
					if c.cfg.OnReclaim != nil {
						c.cfg.OnReclaim(lp.p, len(got))
					}
					lp.backlog = got
					block = 0
					continue
				}
			}
			order = append(order, lp)
		}
		slices.SortFunc(order, func(a, b *loopPart) int { return a.p - b.p })
		for _, lp := range order {
			streams = append(streams, lp.stream)
		}
		for _, lp := range order {
			if lp.reread {
				// Own pending entries: Redis answers at once, with
				// this stream's list (maybe empty), never blocking.
				streams = append(streams, lp.rereadFrom)
			} else {
				streams = append(streams, ">")
			}
		}
		wait := block
		if holding {
			wait = min(wait, laterPoll)
		}
		switch {
		case c.eachPartition && (len(order) > 0 || len(c.inFlight) > 0):
			c.readEach(ctx, stop, parts, order, block, wait)
		case len(order) > 0:
			c.read(ctx, stop, order, streams, wait) // one read for all: it cannot outlast wait
		case wait > 0:
			c.idle(stop, wait)
		}
		c.deliverDue(ctx, parts, h)
		for _, lp := range parts {
			if now.Sub(lp.lastTrim) > 10*time.Second {
				lp.lastTrim = now
				c.trim(ctx, lp.stream, lp.p)
			}
		}
	}
}

// acquire prepares a partition this consumer now owns: its group exists,
// and the entries delivered to earlier owners (or to this consumer before)
// and never acknowledged are its first backlog.
func (c *Consumer) acquire(ctx context.Context, p int, pt *part) *loopPart {
	lp := &loopPart{p: p, pt: pt, stream: c.cfg.Keys.Stream(p), attempts: map[string]int{}, lastReclaim: time.Now(), claim: true}
	if err := c.rdb.XGroupCreateMkStream(ctx, lp.stream, c.cfg.Group, "0").Err(); err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		c.log.Error("consumer group not created", "partition", p, "err", err)
	}
	c.takeOver(ctx, lp)
	return lp
}

// takeOver claims every entry pending in the partition's group, in stream
// order, as the partition's backlog. When it fails, the partition is not
// read: the claim is tried again after RetryBackoff (entries a failed
// attempt claimed are this consumer's and are claimed again).
func (c *Consumer) takeOver(ctx context.Context, lp *loopPart) {
	pending, err := c.reclaim(ctx, lp.stream, 0)
	switch {
	case redis.HasErrorPrefix(err, "NOGROUP"):
		// The stream and its group are gone (Redis restarted empty, a
		// flush): nothing is pending.
		if err := c.rdb.XGroupCreateMkStream(ctx, lp.stream, c.cfg.Group, "0").Err(); err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			c.log.Warn("consumer group not created", "partition", lp.p, "err", err)
			lp.retryAt = time.Now().Add(c.cfg.RetryBackoff)
			return
		}
		pending = nil
	case err != nil:
		c.log.Warn("reclaim failed; the partition is read once it succeeds", "partition", lp.p, "err", err)
		lp.retryAt = time.Now().Add(c.cfg.RetryBackoff)
		return
	case len(pending) > 0:
		c.log.Info("reclaimed pending signals", "partition", lp.p, "count", len(pending))
		if c.cfg.OnReclaim != nil {
			c.cfg.OnReclaim(lp.p, len(pending))
		}
	}
	lp.claim, lp.reread = false, false
	lp.backlog = pending
}

// read fetches entries of the given partitions (streams holds their keys,
// then as many ids: ">" for new entries, or where to re-read the
// consumer's own pending entries from) into their backlogs, waiting up to
// block. After a failure, every partition read re-reads its own pending
// entries next.
func (c *Consumer) read(ctx context.Context, stop <-chan struct{}, order []*loopPart, streams []string, block time.Duration) {
	block = blockArg(block)
	dials := c.dials.Load()
	res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.cfg.Group, Consumer: c.cfg.Name, Streams: streams,
		Count: int64(c.cfg.Batch), Block: block,
	}).Result()
	redialed := c.dials.Load() != dials
	switch {
	case errors.Is(err, redis.Nil) && !redialed:
		return
	case redis.HasErrorPrefix(err, "NOGROUP"):
		// Gone with its stream (Redis restarted empty, a flush): so is
		// anything that was pending.
		for _, lp := range order {
			_ = c.rdb.XGroupCreateMkStream(ctx, lp.stream, c.cfg.Group, "0").Err()
			lp.reread = false
		}
		return
	case err != nil && !errors.Is(err, redis.Nil):
		// Redis may have run the read and delivered entries here whose
		// reply is lost: they are read again before anything new.
		var ps []int
		for _, lp := range order {
			if lp.needReread() {
				ps = append(ps, lp.p)
			}
		}
		c.log.Warn("read failed", "err", err, "rereading_partitions", ps)
		c.idle(stop, time.Second)
		return
	case redialed:
		// The client dialed during the read: go-redis may have sent it
		// again on a new connection after Redis ran it on the old one,
		// whose reply was lost (its entries pending here, unseen). What
		// came back is dropped and read again, in order, with them.
		var ps []int
		for _, lp := range order {
			if lp.needReread() {
				ps = append(ps, lp.p)
				lp.redialed = true
			}
		}
		if len(ps) > 0 {
			c.log.Info("a read dialed a new connection; reading this worker's pending signals again first", "rereading_partitions", ps)
		}
		return
	}
	for _, s := range res {
		i := slices.IndexFunc(order, func(lp *loopPart) bool { return lp.stream == s.Stream })
		if i < 0 {
			continue
		}
		lp := order[i]
		var bad bool
		lp.backlog, bad = c.parse(ctx, lp.backlog, s.Stream, lp.p, s.Messages)
		if lp.reread {
			c.reread(lp, s.Messages)
		}
		if bad {
			lp.needReread()
		}
	}
}

// readResult is what one partition's read (readEach) returned.
type readResult struct {
	p        int
	pt       *part  // the ownership it was read under
	id       string // where it read from: ">", or a re-read's id
	msgs     []redis.XMessage
	err      error
	redialed bool // the client dialed during the read
}

// readEach is read for a Redis Cluster whose partitions are in different
// slots: it starts a read (XREADGROUP on one stream, waiting up to block)
// for each partition of order that has none in flight, then waits until
// one read returns (or wait passes, or the owned set changes) and takes
// every result that is back. A read still in flight carries over to the
// next call; its result is dropped if the partition was released, or
// re-read meanwhile (its entries are pending here and read again in
// order).
func (c *Consumer) readEach(ctx context.Context, stop <-chan struct{}, parts map[int]*loopPart, order []*loopPart, block, wait time.Duration) {
	for _, lp := range order {
		if c.inFlight[lp.p] {
			continue
		}
		c.inFlight[lp.p] = true
		id, readBlock := ">", blockArg(block)
		if lp.reread {
			id, readBlock = lp.rereadFrom, -1 // own pending entries: answered at once
		}
		go func(p int, pt *part, stream string) {
			dials := c.dials.Load()
			res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: c.cfg.Group, Consumer: c.cfg.Name, Streams: []string{stream, id},
				Count: int64(c.cfg.Batch), Block: readBlock,
			}).Result()
			r := readResult{p: p, pt: pt, id: id, err: err, redialed: c.dials.Load() != dials}
			if len(res) > 0 {
				r.msgs = res[0].Messages
			}
			c.results <- r
		}(lp.p, lp.pt, lp.stream)
	}
	t := time.NewTimer(max(wait, time.Millisecond))
	defer t.Stop()
	select {
	case r := <-c.results:
		c.took(ctx, parts, r)
	case <-stop:
		return
	case <-c.wake:
		return
	case <-t.C:
		return
	}
	for {
		select {
		case r := <-c.results:
			c.took(ctx, parts, r)
		default:
			return
		}
	}
}

// took applies one partition's read result (readEach) as read does a
// stream's.
func (c *Consumer) took(ctx context.Context, parts map[int]*loopPart, r readResult) {
	delete(c.inFlight, r.p)
	lp := parts[r.p]
	if lp == nil || lp.pt != r.pt {
		return // released: what it delivered is pending here, for the next owner's claim
	}
	if r.id == ">" && lp.reread {
		return // delivered here, pending: the re-read takes it, in order
	}
	switch {
	case errors.Is(r.err, redis.Nil) && !r.redialed:
		return
	case redis.HasErrorPrefix(r.err, "NOGROUP"):
		_ = c.rdb.XGroupCreateMkStream(ctx, lp.stream, c.cfg.Group, "0").Err()
		lp.reread = false
		return
	case r.err != nil && !errors.Is(r.err, redis.Nil):
		if lp.needReread() {
			c.log.Warn("read failed", "err", r.err, "rereading_partitions", []int{lp.p})
		}
		lp.retryAt = time.Now().Add(time.Second)
		return
	case r.redialed:
		if lp.needReread() {
			lp.redialed = true
			c.log.Info("a read dialed a new connection; reading this worker's pending signals again first", "rereading_partitions", []int{lp.p})
		}
		return
	}
	var bad bool
	lp.backlog, bad = c.parse(ctx, lp.backlog, lp.stream, lp.p, r.msgs)
	if r.id != ">" {
		c.reread(lp, r.msgs)
	}
	if bad {
		lp.needReread()
	}
}

// blockArg is XReadGroupArgs.Block for a wait of d: go-redis sends BLOCK
// in whole milliseconds, and BLOCK 0 waits forever, so a wait under a
// millisecond (a retry due in 0.5 ms) is no wait (-1: no BLOCK), not an
// endless one that only go-redis's read timeout (10 s) ends.
func blockArg(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return -1
	}
	return d
}

// reread notes a page of the partition's own pending entries read again:
// a full page means there may be more after it.
func (c *Consumer) reread(lp *loopPart, msgs []redis.XMessage) {
	if len(msgs) > 0 {
		level := slog.LevelWarn
		if lp.redialed {
			level = slog.LevelInfo // a precaution, usually no failure
		}
		c.log.Log(context.Background(), level, "read again signals left pending on this worker by a failed read or commit, or a read that dialed; they are handled before newer ones",
			"partition", lp.p, "count", len(msgs))
		if c.cfg.OnReread != nil {
			c.cfg.OnReread(lp.p, len(msgs))
		}
	}
	if len(msgs) < c.cfg.Batch {
		lp.reread, lp.rereadFrom = false, "0"
		return
	}
	lp.rereadFrom = msgs[len(msgs)-1].ID
}

// idle waits for d, a change of the owned partitions, or stop.
func (c *Consumer) idle(stop <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
	case <-c.wake:
	case <-t.C:
	}
}

// deliverDue gives the handler every backlog that is due, and applies the
// outcomes: committed entries are dropped, a failed entry waits
// RetryBackoff or, after MaxAttempts, goes to the dead-letter stream; after
// a failed commit the partition re-reads its pending entries (Outcome).
func (c *Consumer) deliverDue(ctx context.Context, parts map[int]*loopPart, h Handler) {
	now := time.Now()
	var due []*loopPart
	for _, lp := range parts {
		if lp.later == nil && len(lp.backlog) > 0 && !now.Before(lp.retryAt) {
			due = append(due, lp)
		}
	}
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b *loopPart) int { return a.p - b.p })
	batches := make([]Batch, len(due))
	for i, lp := range due {
		batches[i] = Batch{Partition: lp.p, Signals: lp.backlog}
	}
	outcomes := h(ctx, batches)
	var commitFailed []int // partitions that began re-reading after a failed commit
	var commitErr error
	for i, lp := range due {
		var o Outcome
		if i < len(outcomes) {
			o = outcomes[i]
		} else {
			o = Outcome{Err: errors.New("bus: handler returned no outcome")}
		}
		if o.Later != nil {
			lp.later, lp.laterSince = o.Later, now // settled by the loop when it comes
			continue
		}
		if c.settle(ctx, lp, o, now) {
			commitFailed = append(commitFailed, lp.p)
			commitErr = o.Err
		}
	}
	if len(commitFailed) > 0 {
		slices.Sort(commitFailed)
		c.log.Warn("commit failed; the signals still pending on this worker are read again before newer ones",
			"partitions", commitFailed, "err", commitErr)
	}
}

// settle applies the outcome of the batch of lp's backlog the handler was
// given: committed entries are dropped, a failed entry waits RetryBackoff
// or, after MaxAttempts, goes to the dead-letter stream; after a failed
// commit the partition re-reads its pending entries (Outcome), and settle
// reports true when it began to.
func (c *Consumer) settle(ctx context.Context, lp *loopPart, o Outcome, now time.Time) (rereading bool) {
	o.N = min(max(o.N, 0), len(lp.backlog))
	for _, s := range lp.backlog[:o.N] {
		delete(lp.attempts, s.ID)
	}
	lp.backlog = lp.backlog[o.N:]
	if o.N > 0 {
		lp.notTried = 0
	}
	if len(lp.backlog) == 0 {
		lp.backlog = nil
		return false
	}
	if o.HandOver != "" {
		if err := c.handOver(ctx, lp, o.HandOver); err != nil {
			// Handled again after the pause; its handler decides again.
			c.log.Warn("partition not handed over; trying again", "partition", lp.p, "to", o.HandOver, "err", err)
			lp.retryAt = now.Add(c.cfg.RetryBackoff)
		}
		return false
	}
	if o.Err == nil {
		o.Err = errors.New("bus: handler stopped early")
	}
	failed := lp.backlog[0]
	if errors.Is(o.Err, ErrNotAttempted) {
		lp.notTried++
		pause := c.cfg.RetryBackoff
		for i := 1; i < lp.notTried && pause < NotAttemptedMaxBackoff; i++ {
			pause *= 2
		}
		lp.retryAt = now.Add(min(pause, NotAttemptedMaxBackoff))
		c.notTriedLog.Do(func() {
			c.log.Warn("signal not given to its app; trying again, not counted as an attempt (logged at most once per 10 s)",
				"partition", lp.p, "id", failed.ID, "kind", failed.Kind, "in_a_row", lp.notTried, "err", o.Err)
		})
		return false
	}
	lp.notTried = 0
	uncommitted := errors.Is(o.Err, ErrCommitFailed)
	if !uncommitted || !redisUnavailable(o.Err) {
		lp.attempts[failed.ID]++
	}
	if n := lp.attempts[failed.ID]; n >= c.cfg.MaxAttempts {
		if err := c.deadLetter(ctx, lp.p, failed, n, o.Err); err != nil {
			// Still pending: handled (and dead-lettered) again after
			// a re-read, before the entries after it.
			lp.needReread()
			lp.retryAt = now.Add(c.cfg.RetryBackoff)
			return false
		}
		delete(lp.attempts, failed.ID)
		lp.backlog = lp.backlog[1:]
		if uncommitted {
			lp.needReread() // the rest of the batch: due at once
		}
		return false // the rest is due at once
	}
	lp.retryAt = now.Add(c.retryPause(lp.attempts[failed.ID]))
	if uncommitted {
		return lp.needReread()
	}
	c.log.Warn("signal failed; retrying", "partition", lp.p, "id", failed.ID, "kind", failed.Kind, "attempt", lp.attempts[failed.ID], "err", o.Err)
	return false
}

// retryPause is the pause before an entry's next attempt after its
// attempts-th failure (ConsumerConfig.MaxRetryBackoff).
func (c *Consumer) retryPause(attempts int) time.Duration {
	d := c.cfg.RetryBackoff
	for i := 1; i < attempts && d < c.cfg.MaxRetryBackoff; i++ {
		d *= 2
	}
	if c.cfg.MaxRetryBackoff > c.cfg.RetryBackoff {
		d = min(d, c.cfg.MaxRetryBackoff)
	}
	return d
}

// redisUnavailable reports whether err says Redis did not answer or
// refused for a passing state, rather than refusing the command itself: a
// dropped, refused or timed-out connection, a closed or exhausted pool,
// LOADING, READONLY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, OOM, BUSY (a
// script running too long).
func redisUnavailable(err error) bool {
	var ne net.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsClusterDownError(err) || redis.IsOOMError(err) ||
		redis.HasErrorPrefix(err, "BUSY ")
}

// reclaim takes over the entries pending in the group for at least minIdle
// (0: all of them, this consumer's own included; this consumer holds the
// lease, so their consumers are gone or were superseded), in stream order.
// After an error, entries it claimed before are pending with this
// consumer: the caller claims or re-reads them again.
func (c *Consumer) reclaim(ctx context.Context, stream string, minIdle time.Duration) ([]Signal, error) {
	var out []Signal
	start := "0-0"
	for {
		msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: stream, Group: c.cfg.Group, Consumer: c.cfg.Name, MinIdle: minIdle, Start: start, Count: int64(c.cfg.Batch),
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("bus: reclaim %s: %w", stream, err)
		}
		var lost bool
		if out, lost = c.parse(ctx, out, stream, -1, msgs); lost {
			return nil, fmt.Errorf("bus: reclaim %s: %w", stream, errDeadLetterFailed)
		}
		if next == "0-0" || next == "" || len(msgs) == 0 {
			return out, nil
		}
		start = next
	}
}

// errDeadLetterFailed: a malformed entry could not be moved to the
// dead-letter stream and is still pending.
var errDeadLetterFailed = errors.New("bus: dead-lettering a malformed entry failed")

// parse appends the decoded entries to out; one that does not follow the
// schema goes to the dead-letter stream at once. It reports whether a
// dead-lettering failed (that entry is still pending here).
func (c *Consumer) parse(ctx context.Context, out []Signal, stream string, p int, msgs []redis.XMessage) ([]Signal, bool) {
	out = slices.Grow(out, len(msgs))
	lost := false
	for _, m := range msgs {
		s, err := ParseSignal(m.ID, m.Values)
		if err != nil {
			if p < 0 {
				p = c.cfg.Keys.StreamPartition(stream)
			}
			if c.deadLetter(ctx, p, Signal{ID: m.ID}, 1, err) != nil {
				lost = true
			}
			continue
		}
		out = append(out, s)
	}
	return out, lost
}

// deadLetter moves a poison entry to the partition's dead-letter stream with
// its attempt count and last error, and acknowledges it; an error means
// the entry may still be pending.
func (c *Consumer) deadLetter(ctx context.Context, p int, s Signal, attempts int, cause error) error {
	stream := c.cfg.Keys.Stream(p)
	vals := []any{"entry", s.ID, "stream", stream, "attempts", attempts, "error", cause.Error(), "worker", c.cfg.Name}
	if s.SID != "" {
		vals = append(vals, s.Values()...)
	}
	var acked *redis.IntCmd
	_, err := c.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: c.cfg.Keys.DeadLetter(p), MaxLen: 100000, Approx: true, Values: vals})
		acked = pipe.XAck(ctx, stream, c.cfg.Group, s.ID)
		return nil
	})
	if err != nil {
		c.log.Error("dead-lettering failed", "partition", p, "id", s.ID, "err", err)
		return fmt.Errorf("bus: dead-letter %s: %w", s.ID, err)
	}
	c.log.Error("signal dead-lettered", "partition", p, "id", s.ID, "kind", s.Kind, "attempts", attempts, "err", cause)
	// Not when the entry was acknowledged already (a worker that took the
	// partition over committed it meanwhile): its answers went out then.
	if c.cfg.OnDeadLetter != nil && acked.Val() == 1 {
		c.cfg.OnDeadLetter(p, s)
	}
	return nil
}

// trim drops the entries of a partition stream that every consumer group
// is done with: the first entry a group still needs is its oldest pending
// one, else the one after the last delivered to it. So the signals of an
// app whose workers are all stopped wait for them in its group, up to
// MaxBacklog entries: beyond that the oldest are trimmed anyway, and what
// each group lost is reported to OnBacklogTrimmed. It reports this
// consumer's group's pending count and lag to OnLag.
func (c *Consumer) trim(ctx context.Context, stream string, p int) {
	groups, err := c.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil || len(groups) == 0 {
		return
	}
	minID := ""
	if info, err := c.rdb.XInfoStream(ctx, stream).Result(); err == nil {
		for i := range groups {
			groups[i].Lag = waiting(groups[i], info)
		}
	}
	for _, g := range groups {
		need := g.LastDeliveredID
		if g.Pending > 0 {
			if sum, err := c.rdb.XPending(ctx, stream, g.Name).Result(); err == nil && sum.Lower != "" {
				need = sum.Lower
			}
		} else if need != "" && need != "0-0" {
			need = nextID(need)
		}
		if minID == "" || compareIDs(need, minID) < 0 {
			minID = need
		}
		if g.Name == c.cfg.Group && c.cfg.OnLag != nil {
			c.cfg.OnLag(p, g.Pending, g.Lag)
		}
		if c.cfg.OnGroupLag != nil {
			c.cfg.OnGroupLag(p, g.Name, g.Lag)
		}
		if over := g.Lag - int64(c.cfg.MaxBacklog); over > 0 {
			c.backlogTrimmed(p, g.Name, over)
		}
	}
	if minID != "" && minID != "0-0" {
		_ = c.rdb.XTrimMinIDApprox(ctx, stream, minID, 0).Err()
	}
	// Exact: the bound is a promise (approximate trimming would keep up to
	// a stream node, 100 entries, more), and it removes nothing unless some
	// group lags that far.
	_ = c.rdb.XTrimMaxLen(ctx, stream, int64(c.cfg.MaxBacklog)).Err()
}

// waiting returns how many of a stream's entries wait to be delivered to
// group g. Redis's lag (entries added minus entries read) still counts
// entries trimmed unread, as MaxBacklog does to a stopped app's group, and
// is nil when it cannot tell: so a group whose last delivered entry is
// older than the stream's first waits for every entry, and no lag exceeds
// the stream's length; -1 when unknown.
func waiting(g redis.XInfoGroup, info *redis.XInfoStream) int64 {
	if info.Length == 0 {
		return 0
	}
	if compareIDs(g.LastDeliveredID, info.FirstEntry.ID) < 0 {
		return info.Length
	}
	return min(g.Lag, info.Length)
}

// backlogTrimmed reports that group lost about n signals of partition p to
// MaxBacklog (logged at most once a minute per group).
func (c *Consumer) backlogTrimmed(p int, group string, n int64) {
	v, _ := c.trimLogs.LoadOrStore(group, &rate.Sometimes{First: 1, Interval: time.Minute})
	v.(*rate.Sometimes).Do(func() {
		c.log.Warn("signals trimmed before a consumer group read them: its app's workers are stopped or too slow "+
			"(logged at most once a minute per group; a group no app uses any more is removed with XGROUP DESTROY, docs/redis.md)",
			"partition", p, "group", group, "count", n, "max_backlog", c.cfg.MaxBacklog)
	})
	if c.cfg.OnBacklogTrimmed != nil {
		c.cfg.OnBacklogTrimmed(p, group, n)
	}
}

// compareIDs orders two stream ids ("<ms>-<seq>").
func compareIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ams, _ := strconv.ParseUint(am, 10, 64)
	bms, _ := strconv.ParseUint(bm, 10, 64)
	if ams != bms {
		return cmp.Compare(ams, bms)
	}
	aseq, _ := strconv.ParseUint(as, 10, 64)
	bseq, _ := strconv.ParseUint(bs, 10, 64)
	return cmp.Compare(aseq, bseq)
}

// nextID returns the smallest stream id after id.
func nextID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return id
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return id
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}
