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

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("bus: publisher closed")

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

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Shards is the number of batch loops; a session always uses the same
	// one, which keeps its writes in order. Each loop has one batch in
	// flight and gathers what arrives meanwhile into the next, so batches
	// grow with load. Fewer loops mean fewer Redis round trips per signal;
	// more loops mean less waiting behind a batch in flight. Default: 4.
	Shards int
	// MaxBatch is the most requests one MULTI/EXEC carries. Default: 256.
	MaxBatch int
	// QueueLen bounds the requests waiting per shard; Publish blocks (until
	// its context ends) when the queue is full. Default: 4096.
	QueueLen int
	// Timeout bounds one batch round trip. Default: 5s.
	Timeout time.Duration
	// Observe, if set, is called after each batch with its size, duration
	// and error (for metrics).
	Observe func(requests int, took time.Duration, err error)
}

func (c *PublisherConfig) defaults() {
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

// Publisher writes signals (and the session state that goes with them) to
// Redis in batches: each batch is one MULTI/EXEC, so it is applied whole or
// not at all, and the writes of one session are applied in the order they
// were published.
type Publisher struct {
	rdb    redis.UniversalClient
	cfg    PublisherConfig
	shards []chan *request
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

type request struct {
	writes []Write
	done   chan error // buffered 1
}

// NewPublisher starts a publisher; Close stops it.
func NewPublisher(rdb redis.UniversalClient, cfg PublisherConfig) *Publisher {
	cfg.defaults()
	p := &Publisher{rdb: rdb, cfg: cfg, shards: make([]chan *request, cfg.Shards)}
	for i := range p.shards {
		p.shards[i] = make(chan *request, cfg.QueueLen)
		p.wg.Add(1)
		go p.loop(p.shards[i])
	}
	return p
}

// Publish queues writes for session sid and waits until they are committed.
func (p *Publisher) Publish(ctx context.Context, sid string, writes ...Write) error {
	done, err := p.PublishAsync(ctx, sid, writes...)
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

// PublishAsync queues writes for session sid and returns a channel that
// receives the commit's result. Writes of the same sid are committed in the
// order they were queued.
func (p *Publisher) PublishAsync(ctx context.Context, sid string, writes ...Write) (<-chan error, error) {
	req := &request{writes: writes, done: make(chan error, 1)}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, ErrPublisherClosed
	}
	select {
	case p.shards[shardOf(sid, len(p.shards))] <- req:
		return req.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close commits what is queued and stops the loops. It is idempotent.
func (p *Publisher) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, ch := range p.shards {
			close(ch)
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Publisher) loop(in chan *request) {
	defer p.wg.Done()
	batch := make([]*request, 0, p.cfg.MaxBatch)
	for req := range in {
		batch = append(batch[:0], req)
	fill:
		for len(batch) < p.cfg.MaxBatch {
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
		p.commit(batch)
	}
}

func (p *Publisher) commit(batch []*request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	_, err := p.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, r := range batch {
			for _, w := range r.writes {
				w(pipe)
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("bus: publish batch of %d: %w", len(batch), err)
	}
	if p.cfg.Observe != nil {
		p.cfg.Observe(len(batch), time.Since(start), err)
	}
	for _, r := range batch {
		r.done <- err
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
