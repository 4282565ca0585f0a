package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
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
)

// ConsumerConfig configures a Consumer. Zero fields take the defaults.
type ConsumerConfig struct {
	// Keys names the streams. Default: NewKeys("", 0).
	Keys Keys
	// Name is this consumer's id, unique among workers. Required.
	Name string
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
	// Logger receives the consumer's logs. Default: slog.Default().
	Logger *slog.Logger
	// Hooks for metrics; each may be nil.
	OnDeadLetter func(partition int)
	OnReclaim    func(partition int, n int)
	OnOwned      func(n int)
	OnLag        func(partition int, pending int64, lag int64)
}

func (c *ConsumerConfig) defaults() {
	if c.Keys == (Keys{}) {
		c.Keys = NewKeys("", 0)
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
type Outcome struct {
	N   int
	Err error
}

// Handler handles the batches of one read, each of a different partition,
// and returns one Outcome per batch, in the same order. The batches of
// different partitions are independent: a handler may run them
// concurrently and commit them together.
type Handler func(ctx context.Context, batches []Batch) []Outcome

// Consumer shares the partition streams out among the workers running one,
// and feeds each owned partition's signals, in order, to a Handler. One loop
// reads every owned partition with a single XREADGROUP and hands the
// handler everything that arrived, so a busy worker costs a few Redis round
// trips per read, not per signal.
type Consumer struct {
	rdb redis.UniversalClient
	cfg ConsumerConfig
	log *slog.Logger

	lastRebalance atomic.Int64  // unix ms of the last successful rebalance
	beat          atomic.Int64  // unix ms when the read loop last went round
	wake          chan struct{} // the owned set changed: the loop looks again

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
	return &Consumer{rdb: rdb, cfg: cfg, log: cfg.Logger.With("worker", cfg.Name),
		owned: map[int]*part{}, releasing: map[int]bool{}, wake: make(chan struct{}, 1)}
}

func (c *Consumer) membersKey() string    { return c.cfg.Keys.Workers() }
func (c *Consumer) leaseKey(p int) string { return c.cfg.Keys.Lease(p) }

// renewScript extends a lease if this consumer owns it, or takes it if free.
var renewScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not owner then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
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
	tick := time.NewTicker(min(c.cfg.LeaseTTL/3, time.Second))
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
	pipe := c.rdb.Pipeline()
	pipe.ZAdd(ctx, c.membersKey(), redis.Z{Score: float64(now), Member: c.cfg.Name})
	pipe.ZRemRangeByScore(ctx, c.membersKey(), "-inf", strconv.FormatInt(now-3*ttl, 10))
	live := pipe.ZRangeByScore(ctx, c.membersKey(), &redis.ZRangeBy{Min: strconv.FormatInt(now-ttl, 10), Max: "+inf"})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bus: membership: %w", err)
	}
	want := share(live.Val(), c.cfg.Name, c.cfg.Keys.Partitions())

	seen, changed := c.releaseUnwanted(want)
	held, err := c.renewLeases(ctx, slices.Sorted(maps.Keys(seen)), ttl)
	if err != nil {
		if changed {
			c.wakeLoop()
		}
		return err
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
	c.lastRebalance.Store(time.Now().UnixMilli())
	return nil
}

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

// Check reports whether the consumer is making progress: its last rebalance
// (membership and leases) is recent, and, when it owns partitions, its read
// loop went round recently (it turns at least once per Block, busy or idle).
func (c *Consumer) Check() error {
	now := time.Now().UnixMilli()
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
	lastTrim    time.Time
	lastReclaim time.Time
}

// loop handles every owned partition until stop is closed: a new
// partition's entries pending from earlier owners first, then new ones,
// read from all partitions at once. Reads are bounded by Block and never
// abandoned half-way, so entries Redis delivered to this consumer are
// always handled here; a stopped partition is let go only between reads.
func (c *Consumer) loop(stop <-chan struct{}, h Handler) {
	ctx := context.Background()
	parts := map[int]*loopPart{}
	defer func() {
		for _, lp := range parts {
			close(lp.pt.done)
		}
	}()
	var streams []string
	var order []*loopPart
	for {
		now := time.Now()
		c.beat.Store(now.UnixMilli())
		// Let go of stopped partitions; take up new ones.
		c.mu.Lock()
		owned := maps.Clone(c.owned)
		c.mu.Unlock()
		for p, lp := range parts {
			if owned[p] != lp.pt {
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
		// Read the partitions with nothing in hand; the others wait for
		// their retry.
		streams, order = streams[:0], order[:0]
		block := c.cfg.Block
		for _, lp := range parts {
			if len(lp.backlog) > 0 {
				block = min(block, max(0, time.Until(lp.retryAt)))
				continue
			}
			if now.Sub(lp.lastReclaim) > reclaimIdle/2 {
				lp.lastReclaim = now
				if got, err := c.reclaim(ctx, lp.stream, reclaimIdle); err == nil && len(got) > 0 {
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
		for range order {
			streams = append(streams, ">")
		}
		switch {
		case len(order) > 0:
			c.read(ctx, stop, order, streams, block)
		case block > 0:
			c.idle(stop, block)
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
// and the entries delivered to earlier owners and never acknowledged are
// its first backlog.
func (c *Consumer) acquire(ctx context.Context, p int, pt *part) *loopPart {
	lp := &loopPart{p: p, pt: pt, stream: c.cfg.Keys.Stream(p), attempts: map[string]int{}, lastReclaim: time.Now()}
	if err := c.rdb.XGroupCreateMkStream(ctx, lp.stream, GroupName, "0").Err(); err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		c.log.Error("consumer group not created", "partition", p, "err", err)
	}
	pending, err := c.reclaim(ctx, lp.stream, 0)
	if err != nil {
		c.log.Warn("reclaim failed", "partition", p, "err", err)
	} else if len(pending) > 0 {
		c.log.Info("reclaimed pending signals", "partition", p, "count", len(pending))
		if c.cfg.OnReclaim != nil {
			c.cfg.OnReclaim(p, len(pending))
		}
	}
	lp.backlog = pending
	return lp
}

// read fetches new entries of the given partitions (streams holds their
// keys, then as many ">") into their backlogs, waiting up to block.
func (c *Consumer) read(ctx context.Context, stop <-chan struct{}, order []*loopPart, streams []string, block time.Duration) {
	if block <= 0 {
		block = -1 // do not wait (go-redis: 0 would wait forever)
	}
	res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: GroupName, Consumer: c.cfg.Name, Streams: streams,
		Count: int64(c.cfg.Batch), Block: block,
	}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return
	case redis.HasErrorPrefix(err, "NOGROUP"):
		for _, lp := range order {
			_ = c.rdb.XGroupCreateMkStream(ctx, lp.stream, GroupName, "0").Err()
		}
		return
	case err != nil:
		c.log.Warn("read failed", "err", err)
		c.idle(stop, time.Second)
		return
	}
	for _, s := range res {
		i := slices.IndexFunc(order, func(lp *loopPart) bool { return lp.stream == s.Stream })
		if i < 0 {
			continue
		}
		order[i].backlog = c.parse(ctx, order[i].backlog, s.Stream, order[i].p, s.Messages)
	}
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
// RetryBackoff or, after MaxAttempts, goes to the dead-letter stream.
func (c *Consumer) deliverDue(ctx context.Context, parts map[int]*loopPart, h Handler) {
	now := time.Now()
	var due []*loopPart
	for _, lp := range parts {
		if len(lp.backlog) > 0 && !now.Before(lp.retryAt) {
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
	for i, lp := range due {
		var o Outcome
		if i < len(outcomes) {
			o = outcomes[i]
		} else {
			o = Outcome{Err: errors.New("bus: handler returned no outcome")}
		}
		o.N = min(max(o.N, 0), len(lp.backlog))
		for _, s := range lp.backlog[:o.N] {
			delete(lp.attempts, s.ID)
		}
		lp.backlog = lp.backlog[o.N:]
		if len(lp.backlog) == 0 {
			lp.backlog = nil
			continue
		}
		if o.Err == nil {
			o.Err = errors.New("bus: handler stopped early")
		}
		failed := lp.backlog[0]
		lp.attempts[failed.ID]++
		if n := lp.attempts[failed.ID]; n >= c.cfg.MaxAttempts {
			c.deadLetter(ctx, lp.p, failed, n, o.Err)
			delete(lp.attempts, failed.ID)
			lp.backlog = lp.backlog[1:]
			continue // the rest is due at once
		}
		c.log.Warn("signal failed; retrying", "partition", lp.p, "id", failed.ID, "kind", failed.Kind, "attempt", lp.attempts[failed.ID], "err", o.Err)
		lp.retryAt = now.Add(c.cfg.RetryBackoff)
	}
}

// reclaim takes over the entries pending in the group for at least minIdle
// (0: all of them; this consumer holds the lease, so their consumers are
// gone or were superseded).
func (c *Consumer) reclaim(ctx context.Context, stream string, minIdle time.Duration) ([]Signal, error) {
	var out []Signal
	start := "0-0"
	for {
		msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: stream, Group: GroupName, Consumer: c.cfg.Name, MinIdle: minIdle, Start: start, Count: int64(c.cfg.Batch),
		}).Result()
		if err != nil {
			return out, fmt.Errorf("bus: reclaim %s: %w", stream, err)
		}
		out = c.parse(ctx, out, stream, -1, msgs)
		if next == "0-0" || next == "" || len(msgs) == 0 {
			return out, nil
		}
		start = next
	}
}

// parse appends the decoded entries to out; one that does not follow the
// schema goes to the dead-letter stream at once.
func (c *Consumer) parse(ctx context.Context, out []Signal, stream string, p int, msgs []redis.XMessage) []Signal {
	out = slices.Grow(out, len(msgs))
	for _, m := range msgs {
		s, err := ParseSignal(m.ID, m.Values)
		if err != nil {
			if p < 0 {
				p = partitionOf(stream)
			}
			c.deadLetter(ctx, p, Signal{ID: m.ID}, 1, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func partitionOf(stream string) int {
	i, j := strings.LastIndexByte(stream, '{'), strings.LastIndexByte(stream, '}')
	p, _ := strconv.Atoi(stream[i+1 : j])
	return p
}

// deadLetter moves a poison entry to the partition's dead-letter stream with
// its attempt count and last error, and acknowledges it.
func (c *Consumer) deadLetter(ctx context.Context, p int, s Signal, attempts int, cause error) {
	stream := c.cfg.Keys.Stream(p)
	vals := []any{"entry", s.ID, "stream", stream, "attempts", attempts, "error", cause.Error(), "worker", c.cfg.Name}
	if s.SID != "" {
		vals = append(vals, s.Values()...)
	}
	_, err := c.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: c.cfg.Keys.DeadLetter(p), MaxLen: 100000, Approx: true, Values: vals})
		pipe.XAck(ctx, stream, GroupName, s.ID)
		return nil
	})
	if err != nil {
		c.log.Error("dead-lettering failed", "partition", p, "id", s.ID, "err", err)
		return
	}
	c.log.Error("signal dead-lettered", "partition", p, "id", s.ID, "kind", s.Kind, "attempts", attempts, "err", cause)
	if c.cfg.OnDeadLetter != nil {
		c.cfg.OnDeadLetter(p)
	}
}

// trim drops entries every consumer of the group is done with, and reports
// the partition's pending count and lag.
func (c *Consumer) trim(ctx context.Context, stream string, p int) {
	groups, err := c.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return
	}
	for _, g := range groups {
		if g.Name != GroupName {
			continue
		}
		minID := g.LastDeliveredID
		if g.Pending > 0 {
			if sum, err := c.rdb.XPending(ctx, stream, GroupName).Result(); err == nil && sum.Lower != "" {
				minID = sum.Lower
			}
		} else if minID != "" && minID != "0-0" {
			minID = nextID(minID)
		}
		if minID != "" && minID != "0-0" {
			_ = c.rdb.XTrimMinIDApprox(ctx, stream, minID, 0).Err()
		}
		if c.cfg.OnLag != nil {
			c.cfg.OnLag(p, g.Pending, g.Lag)
		}
	}
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
