package bus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

// commitScript acknowledges a batch's entries (KEYS[1] the stream, ARGV[1]
// the group, then id and payload per entry) and applies an entry's effect,
// appending its payload to the list KEYS[2], only if its XACK acknowledged
// it now: pkg/session's commit script in small, so effects are applied
// once whatever is handled twice.
var commitScript = redis.NewScript(`
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
  end
end
return 1
`)

// committer is a Handler that commits each batch with commitScript and
// remembers what it was handed, in order.
type committer struct {
	rdb     *redis.Client
	keys    Keys
	applied string // the list of applied effects

	mu      sync.Mutex
	handled []string // payloads in the order handed to the handler
}

func (h *committer) handle(ctx context.Context, batches []Batch) []Outcome {
	out := make([]Outcome, len(batches))
	for i, b := range batches {
		args := []any{GroupName}
		h.mu.Lock()
		for _, s := range b.Signals {
			h.handled = append(h.handled, s.Data)
			args = append(args, s.ID, s.Data)
		}
		h.mu.Unlock()
		if err := commitScript.Run(ctx, h.rdb, []string{h.keys.Stream(b.Partition), h.applied}, args...).Err(); err != nil {
			out[i] = Outcome{Err: fmt.Errorf("%w: %w", ErrCommitFailed, err)}
			continue
		}
		out[i] = Outcome{N: len(b.Signals)}
	}
	return out
}

// appliedBy returns a function reading the effects applied so far, in
// order, through rdb.
func (h *committer) appliedBy(t *testing.T, rdb *redis.Client) func() []string {
	return func() []string {
		got, err := rdb.LRange(context.Background(), h.applied, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
}

func (h *committer) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.handled)
}

// addSignals writes the message signals from..to of session s1 (one
// partition: all of them in one stream) through rdb, in one pipeline.
func addSignals(t *testing.T, rdb *redis.Client, keys Keys, from, to int) {
	t.Helper()
	ctx := context.Background()
	_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for n := from; n <= to; n++ {
			sig := Signal{Kind: KindMessage, SID: "s1", Data: strconv.Itoa(n)}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(0), Values: sig.Values()})
		}
		return nil
	})
	if err != nil {
		t.Errorf("XADD %d..%d: %v", from, to, err)
	}
}

func numbers(from, to int) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, strconv.Itoa(n))
	}
	return out
}

// holdHook holds, once armed, the first command match accepts before it
// is sent: it tells reached and waits for proceed.
type holdHook struct {
	match   func(redis.Cmder) bool
	armed   atomic.Bool
	reached chan struct{}
	proceed chan struct{}
}

func newHoldHook(match func(redis.Cmder) bool) *holdHook {
	return &holdHook{match: match, reached: make(chan struct{}), proceed: make(chan struct{})}
}

func (h *holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.match(cmd) && h.armed.CompareAndSwap(true, false) {
			close(h.reached)
			<-h.proceed
		}
		return next(ctx, cmd)
	}
}
func (h *holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestOwnPendingFirstAfterStall: Redis stalls (SIGSTOP) while signals of
// one session are being written, and the consumer's read or commit is sent
// into the stall and fails on the consumer's side (a timeout) while Redis
// runs it when it resumes. More signals of the session follow. The
// consumer reads its own pending entries again before new ones, so the
// handler first sees every signal in order, and the effects are applied
// once each, in order; nothing is dead-lettered.
//
//   - read: the read reaches Redis after the signals written during the
//     stall, so Redis delivers them to the consumer (its pending entries
//     list) with a reply nobody reads: before, they were handled 30 to 45 s
//     later, by the reclaim of idle entries, after the later signals
//     (issue 13: "handled 61 s late").
//   - commit: the commit is sent into the stall and times out, and so do
//     the attempts after it; before, each failed attempt counted towards
//     MaxAttempts, and the signal was dead-lettered (or, that failing too,
//     dropped from the batch in hand) for a fault of Redis.
func TestOwnPendingFirstAfterStall(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(redis.Cmder) bool
		opt   redis.Options
		block time.Duration
		stall time.Duration
	}{
		// go-redis's defaults, as cmd/worker's: a blocking read times out
		// after Block + 10 s.
		{"read", func(cmd redis.Cmder) bool { return cmd.Name() == "xreadgroup" },
			redis.Options{}, 500 * time.Millisecond, 500*time.Millisecond + 11*time.Second},
		// Short timeouts and no retries: the stall outlasts MaxAttempts
		// commits.
		{"commit", func(cmd redis.Cmder) bool {
			args := cmd.Args()
			return cmd.Name() == "evalsha" && len(args) > 1 && args[1] == commitScript.Hash()
		}, redis.Options{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
			DialTimeout: 300 * time.Millisecond, MaxRetries: -1}, 500 * time.Millisecond, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testredis.Start(t)
			keys := NewKeys("stall:", 1)
			opt := tc.opt
			opt.Addr = srv.Addr
			rdb := redis.NewClient(&opt)
			t.Cleanup(func() { _ = rdb.Close() })
			hook := newHoldHook(tc.match)
			rdb.AddHook(hook)
			// The writer waits out the stall instead of timing out.
			writer := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute})
			t.Cleanup(func() { _ = writer.Close() })
			h := &committer{rdb: rdb, keys: keys, applied: "stall:applied"}
			var reread atomic.Int64
			c := NewConsumer(rdb, ConsumerConfig{Keys: keys, Name: "c", Block: tc.block, MaxAttempts: 2,
				OnReread: func(_ int, n int) { reread.Add(int64(n)) }})
			runHandler(t, c, h.handle)
			waitFor(t, "c owning the partition", func() bool { return len(c.Owned()) == 1 })
			applied := h.appliedBy(t, writer)
			addSignals(t, writer, keys, 1, 2)
			waitFor(t, "signals 1..2 applied", func() bool { return len(applied()) == 2 })
			// Connections in the pool, so that what the hook lets go is
			// sent on one (a new connection would wait for Redis to
			// answer its HELLO first).
			var warm sync.WaitGroup
			for range 4 {
				warm.Go(func() { _ = rdb.Ping(context.Background()).Err() })
			}
			warm.Wait()
			// A read in flight while the pool dialed is read again (the
			// consumer cannot tell those dials from a read's retry): let
			// that settle, so the read held next is a read of new entries.
			time.Sleep(tc.block + 300*time.Millisecond)

			hook.armed.Store(true)
			if tc.name == "commit" {
				addSignals(t, writer, keys, 3, 4) // the batch whose commit is held
			}
			select {
			case <-hook.reached:
			case <-time.After(5 * time.Second):
				t.Fatal("the consumer sent no command to hold within 5s")
			}
			srv.Pause(t)
			resumed := false
			defer func() {
				if !resumed {
					srv.Resume(t)
				}
			}()
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				addSignals(t, writer, keys, 5, 6)
			}()
			time.Sleep(300 * time.Millisecond) // the signals reach Redis's socket first
			close(hook.proceed)
			time.Sleep(tc.stall)
			srv.Resume(t)
			resumed = true
			at := time.Now()
			<-wrote
			addSignals(t, writer, keys, 7, 8)

			want := numbers(1, 8)
			if tc.name == "read" {
				want = slices.Delete(want, 2, 4) // no 3, 4
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(applied()) < len(want) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			got := applied()
			seen := h.seen()
			t.Logf("applied %v %v after the resume; handler handed %v; %d read again from the consumer's pending entries",
				got, time.Since(at).Round(time.Millisecond), seen, reread.Load())
			if !slices.Equal(got, want) {
				t.Fatalf("effects applied %v, want %v (each once, in order)", got, want)
			}
			if first := slices.Compact(slices.Clone(seen)); !slices.Equal(first, want) {
				t.Fatalf("handler handed %v: in the order of first sight %v, want %v", seen, first, want)
			}
			if n, err := writer.XLen(context.Background(), keys.DeadLetter(0)).Result(); err != nil || n != 0 {
				t.Fatalf("%d signals dead-lettered (%v), want none: a stall is not the signal's fault", n, err)
			}
			if tc.name == "read" {
				if !slices.Equal(seen, want) {
					t.Errorf("handler handed %v, want each once", seen)
				}
				if reread.Load() == 0 {
					t.Error("no signal was read again from the consumer's own pending entries: the read did not fail as the test means it to")
				}
			}
		})
	}
}

// A read whose reply is lost with its connection, which go-redis sends
// again on a new connection without a word (its default retries): Redis
// ran the first, so its entries are pending on this worker, and the second
// finds nothing new (it waits its Block, 1 s here). The consumer notices
// the dial and reads its own pending entries again, in order, then (not
// after the 30 s reclaim).
func TestReadRetriedOnNewConnectionRereadsPending(t *testing.T) {
	srv := testredis.Start(t)
	keys := NewKeys("redial:", 1)
	d := newReplyDropper(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: d.ln.Addr().String()}) // go-redis's default retries
	t.Cleanup(func() { _ = rdb.Close() })
	writer := srv.Client(t)
	h := &committer{rdb: writer, keys: keys, applied: "redial:applied"}
	var reread atomic.Int64
	c := NewConsumer(rdb, ConsumerConfig{Keys: keys, Name: "c", Block: time.Second,
		OnReread: func(_ int, n int) { reread.Add(int64(n)) }})
	runHandler(t, c, h.handle)
	waitFor(t, "c owning the partition", func() bool { return len(c.Owned()) == 1 })
	applied := h.appliedBy(t, writer)
	addSignals(t, writer, keys, 1, 2)
	waitFor(t, "signals 1..2 applied", func() bool { return len(applied()) == 2 })
	time.Sleep(200 * time.Millisecond) // the consumer is blocked in its next read
	d.armed.Store(true)
	addSignals(t, writer, keys, 3, 4) // answer that blocked read: the answer is dropped
	deadline := time.Now().Add(5 * time.Second)
	for len(applied()) < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := applied(); !slices.Equal(got, numbers(1, 4)) {
		t.Fatalf("applied %q within 5 s, want signals 1..4 in order", got)
	}
	if reread.Load() == 0 {
		t.Fatal("no pending entry was read again: the dropped answer was not the read's")
	}
}
