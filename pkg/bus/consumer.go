package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
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
	// one that stops releases them at once. Default: 3s.
	LeaseTTL time.Duration
	// Batch is the most entries read at once from one partition. Default: 100.
	Batch int
	// Block is how long one read waits for new entries. Default: 1s.
	Block time.Duration
	// MaxAttempts is how many times an entry is handled before it goes to
	// the dead-letter stream. Default: 5.
	MaxAttempts int
	// RetryBackoff is the pause before handling a failed entry again.
	// Default: 200ms.
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
		c.LeaseTTL = 3 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Block <= 0 {
		c.Block = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Handler handles a batch of one partition's signals, in order. It returns
// how many entries it handled and committed (acknowledged), from the
// start; if that is fewer than len(batch), err says why entry n failed, and
// that entry is handled again (up to MaxAttempts) before anything after it.
type Handler func(ctx context.Context, partition int, batch []Signal) (n int, err error)

// Consumer shares the partition streams out among the workers running one,
// and feeds each owned partition's signals, in order, to a Handler.
type Consumer struct {
	rdb redis.UniversalClient
	cfg ConsumerConfig
	log *slog.Logger

	lastRebalance atomic.Int64 // unix ms of the last successful rebalance

	mu        sync.Mutex
	owned     map[int]*part // partitions being handled
	releasing map[int]bool  // partitions finishing their batch before their lease is released
	wg        sync.WaitGroup
}

// part is one owned partition's loop: closing stop makes it finish the read
// and batch in hand (never abandoning entries Redis already delivered to
// this consumer), then close done.
type part struct {
	stop chan struct{}
	done chan struct{}
	beat atomic.Int64 // unix ms when the loop last went round (at least every Block)
}

// NewConsumer returns a consumer; Run starts it.
func NewConsumer(rdb redis.UniversalClient, cfg ConsumerConfig) *Consumer {
	cfg.defaults()
	return &Consumer{rdb: rdb, cfg: cfg, log: cfg.Logger.With("worker", cfg.Name),
		owned: map[int]*part{}, releasing: map[int]bool{}}
}

func (c *Consumer) membersKey() string { return c.cfg.Keys.Prefix() + "workers" }
func (c *Consumer) leaseKey(p int) string {
	return c.cfg.Keys.Prefix() + "lease:{" + strconv.Itoa(p) + "}"
}

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
	// Rebalance at least every second, so partitions a leaving worker
	// released move within a second whatever the lease lifetime.
	tick := time.NewTicker(min(c.cfg.LeaseTTL/3, time.Second))
	defer tick.Stop()
	defer c.leave()
	for {
		if err := c.rebalance(ctx, h); err != nil && ctx.Err() == nil {
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
func (c *Consumer) rebalance(ctx context.Context, h Handler) error {
	now := time.Now().UnixMilli()
	ttl := c.cfg.LeaseTTL.Milliseconds()
	pipe := c.rdb.Pipeline()
	pipe.ZAdd(ctx, c.membersKey(), redis.Z{Score: float64(now), Member: c.cfg.Name})
	pipe.ZRemRangeByScore(ctx, c.membersKey(), "-inf", strconv.FormatInt(now-3*ttl, 10))
	live := pipe.ZRangeByScore(ctx, c.membersKey(), &redis.ZRangeBy{Min: strconv.FormatInt(now-ttl, 10), Max: "+inf"})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("bus: membership: %w", err)
	}
	members := live.Val()
	slices.Sort(members)
	rank := slices.Index(members, c.cfg.Name)
	n := len(members)
	want := map[int]bool{}
	for p := 0; p < c.cfg.Keys.Partitions(); p++ {
		if rank >= 0 && p%n == rank {
			want[p] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, pt := range c.owned {
		if !want[p] {
			// Hand over gracefully: the lease is released only after the
			// batch in hand is done, so nothing is left pending here.
			close(pt.stop)
			delete(c.owned, p)
			c.releasing[p] = true
			go func(p int, pt *part) {
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
			}(p, pt)
		}
	}
	for p := range want {
		if c.releasing[p] {
			continue // still finishing; renew nothing until it is released
		}
		ok, err := renewScript.Run(ctx, c.rdb, []string{c.leaseKey(p)}, c.cfg.Name, ttl).Int()
		if err != nil {
			return fmt.Errorf("bus: lease %d: %w", p, err)
		}
		pt, owned := c.owned[p]
		switch {
		case ok == 1 && !owned:
			pt = &part{stop: make(chan struct{}), done: make(chan struct{})}
			c.owned[p] = pt
			c.wg.Add(1)
			go c.partition(pt, p, h)
			c.log.Info("partition acquired", "partition", p)
		case ok == 0 && owned:
			close(pt.stop) // someone else holds it now
			delete(c.owned, p)
			c.log.Warn("partition lease lost", "partition", p)
		}
	}
	if c.cfg.OnOwned != nil {
		c.cfg.OnOwned(len(c.owned))
	}
	c.lastRebalance.Store(time.Now().UnixMilli())
	return nil
}

// ErrStalled is wrapped by Check's errors.
var ErrStalled = errors.New("bus: consumer stalled")

// Check reports whether the consumer is making progress: its last rebalance
// (membership and leases) is recent, and every partition it owns went round
// its loop recently (a loop turns at least once per Block, busy or idle).
func (c *Consumer) Check() error {
	now := time.Now().UnixMilli()
	if last := c.lastRebalance.Load(); now-last > 2*c.cfg.LeaseTTL.Milliseconds() {
		return fmt.Errorf("%w: no successful rebalance for %dms", ErrStalled, now-last)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := 3*c.cfg.Block.Milliseconds() + c.cfg.RetryBackoff.Milliseconds()*int64(c.cfg.MaxAttempts) + 10000
	for p, pt := range c.owned {
		if b := pt.beat.Load(); b != 0 && now-b > limit {
			return fmt.Errorf("%w: partition %d has not moved for %dms", ErrStalled, p, now-b)
		}
	}
	return nil
}

// leave stops every partition after its batch in hand, releases the leases
// and the membership, so the others take over at once.
func (c *Consumer) leave() {
	c.mu.Lock()
	for _, pt := range c.owned {
		close(pt.stop)
	}
	owned := c.owned
	c.owned = map[int]*part{}
	c.mu.Unlock()
	c.wg.Wait()
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
// consumer before a running partition loop takes it over (a safety net; a
// new owner takes every pending entry at once).
const reclaimIdle = 30 * time.Second

// partition handles one owned partition until pt.stop is closed: first the
// entries pending from earlier owners, then new ones. Reads are bounded by
// Block and never abandoned half-way, so entries Redis delivered to this
// consumer are always handled here.
func (c *Consumer) partition(pt *part, p int, h Handler) {
	defer c.wg.Done()
	defer close(pt.done)
	ctx := context.Background()
	stopped := func() bool {
		select {
		case <-pt.stop:
			return true
		default:
			return false
		}
	}
	stream := c.cfg.Keys.Stream(p)
	log := c.log.With("partition", p)
	if err := c.rdb.XGroupCreateMkStream(ctx, stream, GroupName, "0").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		log.Error("consumer group not created", "err", err)
		return
	}
	// Entries delivered to an earlier owner and never acknowledged.
	pending, err := c.reclaim(ctx, stream, 0)
	if err != nil {
		log.Warn("reclaim failed", "err", err)
	} else if len(pending) > 0 {
		log.Info("reclaimed pending signals", "count", len(pending))
		if c.cfg.OnReclaim != nil {
			c.cfg.OnReclaim(p, len(pending))
		}
	}
	attempts := map[string]int{}
	lastTrim, lastReclaim := time.Time{}, time.Now()
	for !stopped() {
		pt.beat.Store(time.Now().UnixMilli())
		batch := pending
		pending = nil
		if len(batch) == 0 && time.Since(lastReclaim) > reclaimIdle/2 {
			lastReclaim = time.Now()
			if batch, err = c.reclaim(ctx, stream, reclaimIdle); err == nil && len(batch) > 0 {
				log.Warn("reclaimed signals idle with another consumer", "count", len(batch))
				if c.cfg.OnReclaim != nil {
					c.cfg.OnReclaim(p, len(batch))
				}
			}
		}
		if len(batch) == 0 {
			res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: GroupName, Consumer: c.cfg.Name, Streams: []string{stream, ">"},
				Count: int64(c.cfg.Batch), Block: c.cfg.Block,
			}).Result()
			if err != nil {
				if errors.Is(err, redis.Nil) {
					continue
				}
				if strings.Contains(err.Error(), "NOGROUP") {
					_ = c.rdb.XGroupCreateMkStream(ctx, stream, GroupName, "0").Err()
					continue
				}
				log.Warn("read failed", "err", err)
				sleepUntil(pt.stop, time.Second)
				continue
			}
			for _, s := range res {
				batch = append(batch, c.parse(ctx, stream, p, s.Messages)...)
			}
		}
		for len(batch) > 0 {
			n, err := h(ctx, p, batch)
			for _, s := range batch[:n] {
				delete(attempts, s.ID)
			}
			batch = batch[n:]
			if err == nil || len(batch) == 0 {
				break
			}
			failed := batch[0]
			attempts[failed.ID]++
			if attempts[failed.ID] >= c.cfg.MaxAttempts {
				c.deadLetter(ctx, p, failed, attempts[failed.ID], err)
				delete(attempts, failed.ID)
				batch = batch[1:]
				continue
			}
			log.Warn("signal failed; retrying", "id", failed.ID, "kind", failed.Kind, "attempt", attempts[failed.ID], "err", err)
			time.Sleep(c.cfg.RetryBackoff)
		}
		if time.Since(lastTrim) > 10*time.Second {
			lastTrim = time.Now()
			c.trim(ctx, stream, p)
		}
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
		out = append(out, c.parse(ctx, stream, -1, msgs)...)
		if next == "0-0" || next == "" || len(msgs) == 0 {
			return out, nil
		}
		start = next
	}
}

// parse decodes entries; one that does not follow the schema goes to the
// dead-letter stream at once.
func (c *Consumer) parse(ctx context.Context, stream string, p int, msgs []redis.XMessage) []Signal {
	out := make([]Signal, 0, len(msgs))
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

func sleepUntil(stop <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
	}
}
