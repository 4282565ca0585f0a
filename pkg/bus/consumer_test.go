package bus

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		members []string
		name    string
		n       int
		want    []int
	}{
		{[]string{"a"}, "a", 4, []int{0, 1, 2, 3}},
		{[]string{"b", "a"}, "a", 4, []int{0, 2}},
		{[]string{"b", "a"}, "b", 4, []int{1, 3}},
		{[]string{"c", "a", "b"}, "c", 7, []int{2, 5}},
		{[]string{"a", "b"}, "z", 4, nil},
		{nil, "a", 4, nil},
		{[]string{"a", "b", "c", "d", "e"}, "e", 4, nil},
	} {
		if got := share(tc.members, tc.name, tc.n); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("share(%v, %q, %d) = %v, want %v", tc.members, tc.name, tc.n, got, tc.want)
		}
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ackAll is a Handler that commits every signal.
func ackAll(_ context.Context, batches []Batch) []Outcome {
	out := make([]Outcome, len(batches))
	for i, b := range batches {
		out[i] = Outcome{N: len(b.Signals)}
	}
	return out
}

// runConsumer runs c until the test ends (or the returned stop is called)
// and fails the test if Run does not return within 10s of its stop.
func runConsumer(t *testing.T, c *Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, ackAll) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of its context's end")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestConsumersShareAndHandOver: two consumers split the partitions evenly;
// when one stops, it releases its leases and the other takes them all at
// its next rebalance.
func TestConsumersShareAndHandOver(t *testing.T) {
	srv := testredis.Start(t)
	keys := NewKeys("share:", 4)
	a := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "a", LeaseTTL: 3 * time.Second, Block: 100 * time.Millisecond})
	b := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "b", LeaseTTL: 3 * time.Second, Block: 100 * time.Millisecond})
	runConsumer(t, a)
	waitFor(t, "a owning all 4", func() bool { return len(a.Owned()) == 4 })
	stopB := runConsumer(t, b)
	waitFor(t, "an even share", func() bool {
		return fmt.Sprint(a.Owned()) == "[0 2]" && fmt.Sprint(b.Owned()) == "[1 3]"
	})
	stopB()
	if o := b.Owned(); len(o) != 0 {
		t.Fatalf("b owns %v after stopping", o)
	}
	// b released its leases and left: a takes them within a rebalance
	// period (1s), not a lease lifetime.
	start := time.Now()
	waitFor(t, "a owning all 4 again", func() bool { return len(a.Owned()) == 4 })
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("a took %v to take b's partitions, want about 1s", d)
	}
}

// pauseHook stops, once armed, the first pipeline renewing leases: it tells
// reached and waits for proceed before sending it.
type pauseHook struct {
	armed   atomic.Bool
	reached chan struct{}
	proceed chan struct{}
}

func (h *pauseHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pauseHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}

func (h *pauseHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && isRenewal(cmds[0]) && h.armed.CompareAndSwap(true, false) {
			close(h.reached)
			<-h.proceed
		}
		return next(ctx, cmds)
	}
}

func isRenewal(cmd redis.Cmder) bool {
	args := cmd.Args()
	return len(args) > 1 && (cmd.Name() == "evalsha" && args[1] == renewScript.Hash() || cmd.Name() == "eval")
}

// TestRebalanceDoesNotHoldLockAcrossRedis pauses Redis while a rebalance is
// renewing its leases: Owned and Check, which take the consumer's lock,
// still answer at once, and the consumer carries on once Redis is back.
func TestRebalanceDoesNotHoldLockAcrossRedis(t *testing.T) {
	srv := testredis.Start(t)
	hook := &pauseHook{reached: make(chan struct{}), proceed: make(chan struct{})}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 3 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(hook)
	c := NewConsumer(rdb, ConsumerConfig{Keys: NewKeys("lock:", 4), Name: "c", LeaseTTL: 3 * time.Second, Block: 100 * time.Millisecond})
	runConsumer(t, c)
	waitFor(t, "c owning all 4", func() bool { return len(c.Owned()) == 4 })

	hook.armed.Store(true)
	select {
	case <-hook.reached:
	case <-time.After(5 * time.Second):
		t.Fatal("no lease renewal within 5s")
	}
	srv.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume(t)
		}
	}()
	close(hook.proceed) // the renewal now waits for a Redis that answers nothing
	// Let the renewal reach the socket.
	time.Sleep(200 * time.Millisecond)

	answered := make(chan []int, 1)
	go func() {
		_ = c.Check()
		answered <- c.Owned()
	}()
	select {
	case o := <-answered:
		if len(o) != 4 {
			t.Errorf("Owned() = %v during the pause, want all 4", o)
		}
	case <-time.After(time.Second):
		t.Fatal("Owned and Check blocked while a rebalance waited for Redis: the lock is held across the round trip")
	}

	srv.Resume(t)
	resumed = true
	since := time.Now().UnixMilli()
	waitFor(t, "a rebalance after the pause", func() bool { return c.lastRebalance.Load() > since })
	if err := c.Check(); err != nil {
		t.Fatalf("Check after the pause: %v", err)
	}
	if o := c.Owned(); len(o) != 4 {
		t.Fatalf("Owned() = %v after the pause, want all 4", o)
	}
	// The leases are still c's.
	ctx := context.Background()
	for p := range 4 {
		if owner, err := rdb.Get(ctx, c.leaseKey(p)).Result(); err != nil || owner != "c" {
			t.Fatalf("lease %d: %q, %v; want c", p, owner, err)
		}
	}
}

// TestRedisErrorPrefixes: the errors the consumer tells apart by their
// Redis error prefix (redis.HasErrorPrefix) come out of a real Redis as
// expected, through a single command and through a pipeline.
func TestRedisErrorPrefixes(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.XGroupCreateMkStream(ctx, "prefixes", GroupName, "0").Err(); err != nil {
		t.Fatal(err)
	}
	err := rdb.XGroupCreateMkStream(ctx, "prefixes", GroupName, "0").Err()
	if !redis.HasErrorPrefix(err, "BUSYGROUP") {
		t.Errorf("creating the group twice: %v, want BUSYGROUP", err)
	}
	err = rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "nogroup", Consumer: "c", Streams: []string{"prefixes", ">"}, Block: -1}).Err()
	if !redis.HasErrorPrefix(err, "NOGROUP") {
		t.Errorf("reading with an unknown group: %v, want NOGROUP", err)
	}
	pipe := rdb.Pipeline()
	renewScript.EvalSha(ctx, pipe, []string{"lease"}, "c", 1000)
	if _, err := pipe.Exec(ctx); !redis.HasErrorPrefix(err, "NOSCRIPT") {
		t.Errorf("EVALSHA of an unloaded script in a pipeline: %v, want NOSCRIPT", err)
	}
	if redis.HasErrorPrefix(context.DeadlineExceeded, "NOGROUP") || redis.HasErrorPrefix(nil, "NOSCRIPT") {
		t.Error("HasErrorPrefix matched an error that is not Redis's")
	}
}
