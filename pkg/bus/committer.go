package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrCommitterClosed is returned by Commit and CommitAsync after Close.
var ErrCommitterClosed = errors.New("bus: committer closed")

// Write is one step of a batch: it queues commands on a pipeline. A Write
// that cannot be written now returns ErrRetryBatch: its batch is then not
// sent, and the committer tries it again (see Committer).
type Write func(pipe redis.Pipeliner) error

// ErrRetryBatch is what a Write returns when its batch must not be sent
// now but can be tried again soon (a route table older than its steps may
// use, session.Store's): Retryable reports it, so the committer tries the
// batch again until CommitterConfig.Timeout.
var ErrRetryBatch = errors.New("bus: batch not sent: a step asks for it to be tried again")

// XAdd returns the Write that appends sig to its session's partition stream.
func XAdd(keys Keys, sig *Signal) Write {
	stream := keys.StreamFor(sig.SID)
	values := sig.Values()
	return func(pipe redis.Pipeliner) error {
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: values})
		return nil
	}
}

// CommitterConfig configures a Committer.
type CommitterConfig struct {
	// Keys names the commit markers (Keys.CommitMarker). Default:
	// NewKeys("", 0).
	Keys Keys
	// Node is the id of the process committing, in its commit markers'
	// names; unique in the cluster. Default: a random id.
	Node string
	// Shards is the number of batch loops; a session always uses the same
	// one (its partition's, modulo Shards), which keeps its writes in
	// order. Each loop has one batch in flight and gathers what arrives
	// meanwhile into the next, so batches grow with load. Default: on a
	// Redis Cluster whose partitions are in different slots, one per
	// partition (Keys.Partitions()), so that a batch writes the keys of one
	// partition only, in one hash slot, as a MULTI/EXEC must there;
	// elsewhere (one Redis, Sentinel, or a cluster with the partitions in
	// one slot) DefaultCommitShardsOneNode.
	Shards int
	// MaxBatch is the most requests one MULTI/EXEC carries. Default:
	// DefaultCommitMaxBatch.
	MaxBatch int
	// QueueLen bounds the requests waiting per shard; Commit blocks (until
	// its context ends) when the queue is full. Default: DefaultCommitQueueLen.
	QueueLen int
	// Timeout bounds one batch: its round trips, and its retries after
	// errors that prove Redis applied nothing (see Retryable). Default: 5s.
	Timeout time.Duration
	// RetryMin and RetryMax bound the wait between a batch's attempts
	// (doubling). Defaults: DefaultCommitRetryMin, DefaultCommitRetryMax.
	RetryMin, RetryMax time.Duration
	// Observe, if set, is called after each batch with its size, duration
	// and error (for metrics).
	Observe func(requests int, took time.Duration, err error)
	// RolledBack, if set, is called when a batch finds that Redis lost
	// batches it had acknowledged (Redis came back with older data: a
	// promoted replica that lagged, a restart from an older AOF or
	// snapshot), before the batch's own result is delivered: sids are the
	// sessions whose writes were in the lost batches, and complete is false
	// when more batches were lost than the committer remembers
	// (DefaultCommitRemember per shard), or their number is unknown (the
	// marker is gone). It runs on the shard's goroutine: it must not
	// block.
	RolledBack func(sids []string, complete bool)
}

func (c *CommitterConfig) defaults() {
	if c.Keys.IsZero() {
		c.Keys = NewKeys("", 0)
	}
	if c.Node == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		c.Node = "committer-" + hex.EncodeToString(b)
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultCommitMaxBatch
	}
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultCommitQueueLen
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultCommitTimeout
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultCommitRetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(c.RetryMin, DefaultCommitRetryMax)
	}
}

// Committer defaults.
const (
	// DefaultCommitShardsOneNode is CommitterConfig.Shards where every
	// partition is on one node: one loop, whose batches then gather the
	// signals of every partition. With a shard per partition (16), a
	// closed-loop websocket echo of 100 clients ran a MULTI/EXEC for every
	// 2.2 signals and spent 28-33 µs of Redis CPU per ack; with one, a
	// MULTI/EXEC for every 19 signals and 20-23 µs (BENCHMARKS.md, issue
	// 20). One batch in flight does not limit a gateway: at 0.5 ms of
	// round trip, DefaultCommitMaxBatch signals a batch is 500,000 a second.
	DefaultCommitShardsOneNode = 1

	DefaultCommitMaxBatch = 256
	DefaultCommitQueueLen = 4096
	DefaultCommitTimeout  = 5 * time.Second
	DefaultCommitRetryMin = 50 * time.Millisecond
	DefaultCommitRetryMax = 500 * time.Millisecond
	// CommitMarkerTTL is how long a shard's commit marker outlives its last
	// batch (a process that stopped leaves its markers behind this long).
	CommitMarkerTTL = 24 * time.Hour
	// DefaultCommitRemember is how many of its last acknowledged batches a
	// shard remembers the sessions of, for CommitterConfig.RolledBack, and
	// DefaultCommitRememberSessions how many session ids at most in all
	// (so at most about 1 MiB of them per shard).
	DefaultCommitRemember         = 1024
	DefaultCommitRememberSessions = 16384
)

// Committer writes signals (and the session state that goes with them) to
// Redis in batches: each batch is one MULTI/EXEC, so it is applied whole or
// not at all, and the writes of one session are applied in the order they
// were queued.
//
// Each batch also writes its number into its shard's commit marker
// (Keys.CommitMarker; a shard has one batch in flight, so the marker holds
// the number of its last batch applied), so that a batch whose answer was
// lost can be told applied or not. A batch is tried
// again, with a growing pause, until Timeout, when it failed in a way that
// proves Redis applied none of it (no connection could be made; Redis is
// loading its data, is a replica, is out of memory, or aborted the
// transaction), and when its connection was closed by Redis (a killed
// client, a crash, a failover: what Redis had not run when it closed the
// connection it never runs) and its marker is not there. So a Redis
// restart, a killed connection or a Sentinel failover shorter than Timeout
// commits late instead of failing, and never twice. A batch whose answer
// timed out (Redis stalled: it may still run it) fails. (Messages to
// gateways are appended by the session scripts some writes run, see
// package session.)
//
// The marker also shows batches that Redis acknowledged and then lost
// (Redis came back with older data): each batch writes it with SET ... GET,
// and the number it replaces must be the previous batch's. A replica holds a
// prefix of its primary's history, so a smaller number means exactly the
// batches after it were lost; the committer remembers the sessions of its
// last batches and reports those of the lost ones (RolledBack), whose
// clients were told their packets were taken.
type Committer struct {
	rdb    redis.UniversalClient
	cfg    CommitterConfig
	shards []chan *request
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

type request struct {
	sid    string
	writes []Write
	done   chan error  // buffered 1
	notify func(error) // nil, or called with the result after done
}

// NewCommitter starts a committer; Close stops it.
func NewCommitter(rdb redis.UniversalClient, cfg CommitterConfig) *Committer {
	cfg.defaults()
	if cfg.Shards <= 0 {
		cfg.Shards = DefaultCommitShardsOneNode
		if Spread(rdb, cfg.Keys) {
			cfg.Shards = cfg.Keys.Partitions()
		}
	}
	c := &Committer{rdb: rdb, cfg: cfg, shards: make([]chan *request, cfg.Shards)}
	for i := range c.shards {
		c.shards[i] = make(chan *request, cfg.QueueLen)
		c.wg.Add(1)
		go c.loop(c.shards[i], cfg.Keys.CommitMarker(i%cfg.Keys.Partitions(), cfg.Node))
	}
	return c
}

// Commit queues writes for session sid and waits until they are committed.
func (c *Committer) Commit(ctx context.Context, sid string, writes ...Write) error {
	done, err := c.CommitAsync(ctx, sid, writes...)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CommitAsync queues writes for session sid and returns a channel that
// receives the commit's result. Writes of the same sid are committed in the
// order they were queued.
func (c *Committer) CommitAsync(ctx context.Context, sid string, writes ...Write) (<-chan error, error) {
	return c.commitAsync(ctx, sid, nil, writes)
}

func (c *Committer) commitAsync(ctx context.Context, sid string, notify func(error), writes []Write) (<-chan error, error) {
	req := &request{sid: sid, writes: writes, done: make(chan error, 1), notify: notify}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrCommitterClosed
	}
	select {
	case c.shards[c.cfg.Keys.PartitionOf(sid)%len(c.shards)] <- req:
		return req.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CommitNotify is CommitAsync that also calls notify with the commit's
// result once it is known (nil: committed). notify runs on the committer's
// goroutine, so it must not block; it lets a caller that does not wait for
// each commit act on a failure at once.
func (c *Committer) CommitNotify(ctx context.Context, sid string, notify func(error), writes ...Write) (<-chan error, error) {
	return c.commitAsync(ctx, sid, notify, writes)
}

// Check commits an empty batch (its marker alone) on every shard, so that
// batches Redis acknowledged and lost are found (RolledBack) even if no
// session writes again: call it when Redis comes back after an outage. It
// does not wait for the batches.
func (c *Committer) Check(ctx context.Context) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return
	}
	for _, shard := range c.shards {
		select {
		case shard <- &request{done: make(chan error, 1)}:
		case <-ctx.Done():
			return
		}
	}
}

// Close commits what is queued and stops the loops. It is idempotent.
func (c *Committer) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for _, ch := range c.shards {
			close(ch)
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// acked is what a shard remembers of its batches Redis acknowledged: the
// sessions of the last DefaultCommitRemember of them, by batch number.
type acked struct {
	first uint64     // the number of sids[0]'s batch
	sids  [][]string // the sessions of batches first, first+1, ...
	n     int        // session ids in sids
	at    time.Time  // when the last one was acknowledged
}

// add records batch seq's sessions.
func (a *acked) add(seq uint64, batch []*request) {
	sids := make([]string, 0, len(batch))
	for _, r := range batch {
		if r.sid != "" { // Check's empty requests
			sids = append(sids, r.sid)
		}
	}
	if len(a.sids) == 0 || seq != a.first+uint64(len(a.sids)) {
		a.first, a.sids, a.n = seq, a.sids[:0], 0
	}
	a.sids = append(a.sids, sids)
	a.n += len(sids)
	for len(a.sids) > 1 && (len(a.sids) > DefaultCommitRemember || a.n > DefaultCommitRememberSessions) {
		a.n -= len(a.sids[0])
		a.sids[0] = nil
		a.sids = a.sids[1:]
		a.first++
	}
	a.at = time.Now()
}

// lostAfter returns the sessions of the remembered batches numbered above
// kept (the last batch Redis still has), and whether they are all the lost
// ones.
func (a *acked) lostAfter(kept uint64) ([]string, bool) {
	var out []string
	for i, sids := range a.sids {
		if a.first+uint64(i) > kept {
			out = append(out, sids...)
		}
	}
	return out, kept+1 >= a.first
}

func (c *Committer) loop(in chan *request, marker string) {
	defer c.wg.Done()
	batch := make([]*request, 0, c.cfg.MaxBatch)
	var seq uint64 // the shard's batches, numbered from 1
	var done acked
	for req := range in {
		batch = append(batch[:0], req)
	fill:
		for len(batch) < c.cfg.MaxBatch {
			select {
			case r, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		seq++
		c.commitBatch(batch, marker, seq, &done)
	}
}

func (c *Committer) commitBatch(batch []*request, marker string, seq uint64, done *acked) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	var err error
	for wait := c.cfg.RetryMin; ; wait = min(2*wait, c.cfg.RetryMax) {
		var prev *redis.StatusCmd
		_, err = c.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, r := range batch {
				for _, w := range r.writes {
					if err := w(pipe); err != nil {
						return err // nothing sent
					}
				}
			}
			prev = pipe.SetArgs(ctx, marker, seq, redis.SetArgs{TTL: CommitMarkerTTL, Get: true})
			return nil
		})
		if errors.Is(err, redis.Nil) && errors.Is(prev.Err(), redis.Nil) {
			err = nil // the marker was not there: a first batch, or a loss (checkMarker)
		}
		if err == nil {
			c.checkMarker(prev, seq, done)
		}
		if err != nil && closedByRedis(err) {
			var applied bool
			if applied, err = c.applied(ctx, marker, seq, wait); applied {
				break
			}
			if err == nil {
				continue // not applied, and never will be: commit it now
			}
		}
		if err == nil || !Retryable(err) || !c.pause(ctx, wait) {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("bus: commit batch of %d: %w", len(batch), err)
	} else {
		done.add(seq, batch)
	}
	if c.cfg.Observe != nil {
		c.cfg.Observe(len(batch), time.Since(start), err)
	}
	for _, r := range batch {
		r.done <- err
		if r.notify != nil {
			r.notify(err)
		}
	}
}

// checkMarker reads the number a batch's marker write replaced (prev, the
// answer of SET ... GET): the previous batch's (seq-1), or seq itself when
// an earlier try of this batch was applied. Anything smaller, or no marker
// while batches were acknowledged within CommitMarkerTTL, means Redis lost
// batches it had acknowledged: their sessions are reported to RolledBack.
func (c *Committer) checkMarker(prev *redis.StatusCmd, seq uint64, done *acked) {
	if c.cfg.RolledBack == nil || len(done.sids) == 0 {
		return
	}
	v, err := prev.Result()
	switch {
	case errors.Is(err, redis.Nil):
		if time.Since(done.at) >= CommitMarkerTTL {
			return // expired, not lost
		}
		sids, _ := done.lostAfter(0)
		c.cfg.RolledBack(sids, false)
	case err == nil:
		kept, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil || kept+1 >= seq {
			return
		}
		sids, complete := done.lostAfter(kept)
		c.cfg.RolledBack(sids, complete)
	}
}

// applied reads whether a batch whose connection Redis closed was applied
// (its shard's marker holds its number seq, or a later one), trying until
// ctx ends while Redis cannot be reached.
func (c *Committer) applied(ctx context.Context, marker string, seq uint64, wait time.Duration) (bool, error) {
	for ; ; wait = min(2*wait, c.cfg.RetryMax) {
		v, err := c.rdb.Get(ctx, marker).Uint64()
		if errors.Is(err, redis.Nil) {
			return false, nil
		}
		if err == nil {
			return v >= seq, nil
		}
		if !Retryable(err) && !closedByRedis(err) || !c.pause(ctx, wait) {
			return false, err
		}
	}
}

// pause waits d, or until ctx ends (then it returns false).
func (c *Committer) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// closedByRedis reports whether a command failed because Redis closed its
// connection (a killed client, a crash, a failover): what Redis had not
// run on that connection then, it never runs.
func closedByRedis(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Retryable reports whether a command's or a transaction's error proves
// Redis ran none of it, so running it again cannot apply it twice: the
// connection could not be made (or no pooled one was free), or Redis
// refused it whole (LOADING while it loads its data after a restart,
// READONLY on a replica, OOM, MASTERDOWN, TRYAGAIN, CLUSTERDOWN while a
// Redis Cluster has no primary for some slot, and EXECABORT for a
// transaction one of whose commands it refused so); and ErrRetryBatch, a
// batch a Write kept from being sent. Unlike the consumer's
// redisUnavailable, a timeout or a dropped connection is not retryable
// here: Redis may have run the command.
func Retryable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, ErrRetryBatch) {
		return true
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsClusterDownError(err) || redis.IsOOMError(err) ||
		redis.HasErrorPrefix(err, "EXECABORT")
}
