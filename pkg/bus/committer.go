package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrCommitterClosed is returned by Commit and CommitAsync after Close.
var ErrCommitterClosed = errors.New("bus: committer closed")

// Write is one step of a batch: it queues commands on a pipeline.
type Write func(pipe redis.Pipeliner)

// XAdd returns the Write that appends sig to its session's partition stream.
func XAdd(keys Keys, sig *Signal) Write {
	stream := keys.StreamFor(sig.SID)
	values := sig.Values()
	return func(pipe redis.Pipeliner) {
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: values})
	}
}

// CommitterConfig configures a Committer.
type CommitterConfig struct {
	// Shards is the number of batch loops; a session always uses the same
	// one, which keeps its writes in order. Each loop has one batch in
	// flight and gathers what arrives meanwhile into the next, so batches
	// grow with load. Fewer loops mean fewer Redis round trips per signal;
	// more loops mean less waiting behind a batch in flight. Default: 4.
	Shards int
	// MaxBatch is the most requests one MULTI/EXEC carries. Default: 256.
	MaxBatch int
	// QueueLen bounds the requests waiting per shard; Commit blocks (until
	// its context ends) when the queue is full. Default: 4096.
	QueueLen int
	// Timeout bounds one batch round trip. Default: 5s.
	Timeout time.Duration
	// Observe, if set, is called after each batch with its size, duration
	// and error (for metrics).
	Observe func(requests int, took time.Duration, err error)
}

func (c *CommitterConfig) defaults() {
	if c.Shards <= 0 {
		c.Shards = 4
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 4096
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
}

// Committer writes signals (and the session state that goes with them) to
// Redis in batches: each batch is one MULTI/EXEC, so it is applied whole or
// not at all, and the writes of one session are applied in the order they
// were queued. (It sends no PUBLISH of its own: messages to gateways are
// published by the session scripts some writes run, see package session.)
type Committer struct {
	rdb    redis.UniversalClient
	cfg    CommitterConfig
	shards []chan *request
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

type request struct {
	writes []Write
	done   chan error  // buffered 1
	notify func(error) // nil, or called with the result after done
}

// NewCommitter starts a committer; Close stops it.
func NewCommitter(rdb redis.UniversalClient, cfg CommitterConfig) *Committer {
	cfg.defaults()
	c := &Committer{rdb: rdb, cfg: cfg, shards: make([]chan *request, cfg.Shards)}
	for i := range c.shards {
		c.shards[i] = make(chan *request, cfg.QueueLen)
		c.wg.Add(1)
		go c.loop(c.shards[i])
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
	req := &request{writes: writes, done: make(chan error, 1), notify: notify}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrCommitterClosed
	}
	select {
	case c.shards[shardOf(sid, len(c.shards))] <- req:
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

func (c *Committer) loop(in chan *request) {
	defer c.wg.Done()
	batch := make([]*request, 0, c.cfg.MaxBatch)
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
		c.commitBatch(batch)
	}
}

func (c *Committer) commitBatch(batch []*request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	_, err := c.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, r := range batch {
			for _, w := range r.writes {
				w(pipe)
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("bus: commit batch of %d: %w", len(batch), err)
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

func shardOf(sid string, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(sid))
	return int(h.Sum32() % uint32(n))
}
