package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// runConsumer runs c with ackAll until the test ends (or the returned stop
// is called) and fails the test if Run does not return within 10s of its
// stop.
func runConsumer(t *testing.T, c *Consumer) (stop func()) {
	return runHandler(t, c, ackAll)
}

// runHandler is runConsumer with handler h.
func runHandler(t *testing.T, c *Consumer, h Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
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
	waitFor(t, "c past its start grace", func() bool { return c.Check() == nil })

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

// Two apps (consumer groups) on one partition stream: the stream is trimmed
// only past what both are done with, so the signals the slower app has not
// read wait for it; but never more than MaxBacklog entries wait, and what a
// group lost to that bound is reported with its name.
func TestTrimWaitsForEveryGroupUpToMaxBacklog(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := NewKeys("apps:", 1)
	stream := keys.Stream(0)
	for _, g := range []string{"echo", "chat"} {
		if err := rdb.XGroupCreateMkStream(ctx, stream, g, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range 1000 {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"n", i}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// echo read and acknowledged everything; chat read and acknowledged
	// the first 500.
	readAck := func(group string, n int64) {
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: n}).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res[0].Messages {
			if err := rdb.XAck(ctx, stream, group, m.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	readAck("echo", 1000)
	readAck("chat", 500)

	var trimmed []string
	report := func(p int, group string, n int64) { trimmed = append(trimmed, fmt.Sprintf("%d %s %d", p, group, n)) }
	echo := NewConsumer(rdb, ConsumerConfig{Keys: keys, Name: "e1", Group: "echo", OnBacklogTrimmed: report})
	echo.trim(ctx, stream, 0)
	n, err := rdb.XLen(ctx, stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	first, err := rdb.XRangeN(ctx, stream, "-", "+", 1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < 500 || n >= 1000 || compareIDs(first[0].ID, ids[500]) > 0 {
		t.Fatalf("after the trim: %d entries from %s; want fewer than 1000, chat's 500 unread (from %s) kept", n, first[0].ID, ids[500])
	}
	if len(trimmed) != 0 {
		t.Fatalf("reported %q with no backlog bound passed", trimmed)
	}

	bounded := NewConsumer(rdb, ConsumerConfig{Keys: keys, Name: "e2", Group: "echo", MaxBacklog: 300, OnBacklogTrimmed: report})
	bounded.trim(ctx, stream, 0)
	if n, _ := rdb.XLen(ctx, stream).Result(); n != 300 {
		t.Fatalf("%d entries with MaxBacklog 300", n)
	}
	if want := []string{"0 chat 200"}; !slices.Equal(trimmed, want) {
		t.Fatalf("reported %q, want %q", trimmed, want)
	}

	// chat stays stopped: Redis's lag for it still counts the 200 trimmed
	// (entries added minus entries read), so it is taken from the stream;
	// 100 more signals, and the next trim counts the 100 it drops for chat
	// (not 300), and reports every group's lag.
	for i := range 100 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"n", 1000 + i}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	readAck("echo", 100)
	if gs, _ := rdb.XInfoGroups(ctx, stream).Result(); len(gs) != 2 || gs[0].Name != "chat" || gs[0].Lag != 600 {
		t.Fatalf("groups %+v: want chat's lag 600 as Redis counts it", gs)
	}
	trimmed = nil
	lags := map[string]int64{}
	again := NewConsumer(rdb, ConsumerConfig{Keys: keys, Name: "e3", Group: "echo", MaxBacklog: 300, OnBacklogTrimmed: report,
		OnGroupLag: func(p int, group string, lag int64) { lags[group] = lag }})
	again.trim(ctx, stream, 0)
	if want := []string{"0 chat 100"}; !slices.Equal(trimmed, want) {
		t.Fatalf("second trim reported %q, want %q", trimmed, want)
	}
	if lags["chat"] != 400 || lags["echo"] != 0 {
		t.Fatalf("group lags %v, want chat 400 (before the trim), echo 0", lags)
	}
}

// Consumers of different groups each own every partition (each group shares
// the partitions among its own workers, under its own lease keys), and each
// group gets every signal.
func TestGroupsEachGetEverySignal(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := NewKeys("groups:", 2)
	got := map[string]map[string]bool{"echo": {}, "chat": {}}
	var mu sync.Mutex
	handler := func(group string) Handler {
		return func(ctx context.Context, batches []Batch) []Outcome {
			out := make([]Outcome, len(batches))
			for i, b := range batches {
				for _, s := range b.Signals {
					if err := rdb.XAck(ctx, keys.Stream(b.Partition), group, s.ID).Err(); err != nil {
						out[i] = Outcome{Err: err}
						break
					}
					mu.Lock()
					got[group][keys.Stream(b.Partition)+" "+s.ID] = true
					mu.Unlock()
					out[i].N++
				}
			}
			return out
		}
	}
	for _, g := range []string{"echo", "chat"} {
		c := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "w-" + g, Group: g, Block: 100 * time.Millisecond})
		runHandler(t, c, handler(g))
		waitFor(t, g+" owning both partitions", func() bool { return len(c.Owned()) == 2 })
		if owner, _ := rdb.Get(ctx, keys.GroupLease(g, 1)).Result(); owner != "w-"+g {
			t.Fatalf("lease of partition 1 in group %s: %q", g, owner)
		}
	}
	var sent []string
	for i := range 20 {
		sig := &Signal{Kind: KindEvent, SID: fmt.Sprintf("sid%d", i), Name: "e", Args: "[]"}
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(sig.SID), Values: sig.Values()}).Result()
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, keys.StreamFor(sig.SID)+" "+id) // ids are per stream
	}
	waitFor(t, "both groups handling all 20", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["echo"]) == 20 && len(got["chat"]) == 20
	})
	for _, id := range sent {
		if !got["echo"][id] || !got["chat"][id] {
			t.Errorf("signal %s: echo %v, chat %v", id, got["echo"][id], got["chat"][id])
		}
	}
}

func TestRetryPause(t *testing.T) {
	fixed := &Consumer{cfg: ConsumerConfig{RetryBackoff: 200 * time.Millisecond}}
	for _, n := range []int{1, 2, 5} {
		if got := fixed.retryPause(n); got != 200*time.Millisecond {
			t.Errorf("fixed: attempt %d: %v", n, got)
		}
	}
	exp := &Consumer{cfg: ConsumerConfig{RetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: time.Second}}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := exp.retryPause(i + 1); got != w*time.Millisecond {
			t.Errorf("doubling: attempt %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

// A batch whose Outcome comes later (Outcome.Later, a slow handler) holds
// back its own partition only: the other partitions' signals are handed
// out meanwhile, its own next signals only after its outcome, and the
// consumer stops only once that outcome came (its entries stay with it).
func TestLaterOutcomeHoldsItsPartitionOnly(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := NewKeys("later:", 2)
	sidA, sidB := "a", "b"
	for keys.PartitionOf(sidB) == keys.PartitionOf(sidA) {
		sidB += "b"
	}
	var mu sync.Mutex
	var handled []string       // signal names, in the order handed out
	held := make(chan Outcome) // the slow batch's outcome, sent by the test
	heldBatch := make(chan Batch, 1)
	h := func(ctx context.Context, batches []Batch) []Outcome {
		out := make([]Outcome, len(batches))
		for i, b := range batches {
			mu.Lock()
			for _, s := range b.Signals {
				handled = append(handled, s.Name)
			}
			mu.Unlock()
			if b.Signals[0].Name == "slow" {
				heldBatch <- b
				out[i] = Outcome{Later: held}
				continue
			}
			for _, s := range b.Signals {
				if err := rdb.XAck(ctx, keys.Stream(b.Partition), GroupName, s.ID).Err(); err != nil {
					t.Error(err)
				}
			}
			out[i].N = len(b.Signals)
		}
		return out
	}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(handled)
	}
	emit := func(sid, name string) {
		t.Helper()
		sig := &Signal{Kind: KindEvent, SID: sid, Name: name, Args: "[]"}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(sig.SID), Values: sig.Values()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	settle := func(b Batch) {
		t.Helper()
		for _, s := range b.Signals {
			if err := rdb.XAck(ctx, keys.Stream(b.Partition), GroupName, s.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
		held <- Outcome{N: len(b.Signals)}
	}
	c := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "w", Block: time.Second})
	stop := runHandler(t, c, h)
	waitFor(t, "owning both partitions", func() bool { return len(c.Owned()) == 2 })

	emit(sidA, "slow")
	b := <-heldBatch
	emit(sidA, "a2")
	emit(sidB, "b1")
	waitFor(t, "the other partition's signal handed out while the slow batch is held", func() bool { return slices.Contains(got(), "b1") })
	time.Sleep(100 * time.Millisecond)
	if slices.Contains(got(), "a2") {
		t.Fatalf("the held partition's next signal was handed out before its batch's outcome: %q", got())
	}
	settle(b)
	waitFor(t, "the held partition's next signal", func() bool { return slices.Contains(got(), "a2") })
	if g := got(); !slices.Equal(g, []string{"slow", "b1", "a2"}) {
		t.Fatalf("handed out %q", g)
	}

	// Stopping waits for a held batch's outcome.
	emit(sidA, "slow")
	b = <-heldBatch
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the consumer stopped with a batch still being handled")
	case <-time.After(300 * time.Millisecond):
	}
	settle(b)
	<-stopped
}

// A batch held in its handler (Outcome.Later) for longer than the read loop
// may stand still makes Check report the consumer stalled, as a handler
// that does not return made the loop stand still.
func TestCheckReportsAHeldBatch(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	keys := NewKeys("held:", 1)
	held := make(chan Outcome, 1)
	c := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "w", Block: 100 * time.Millisecond, RetryBackoff: 10 * time.Millisecond, MaxAttempts: 1})
	stop := runHandler(t, c, func(ctx context.Context, batches []Batch) []Outcome {
		out := make([]Outcome, len(batches))
		for i := range out {
			out[i].Later = held
		}
		return out
	})
	defer func() {
		held <- Outcome{}
		stop()
	}()
	waitFor(t, "ready", func() bool { return c.Check() == nil })
	sig := &Signal{Kind: KindEvent, SID: "s", Name: "e", Args: "[]"}
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: keys.StreamFor(sig.SID), Values: sig.Values()}).Err(); err != nil {
		t.Fatal(err)
	}
	// The limit: 3 Blocks + RetryBackoff × MaxAttempts + 10 s.
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for err := c.Check(); !errors.Is(err, ErrStalled); err = c.Check() {
		if time.Now().After(deadline) {
			t.Fatalf("Check %v after %v with a batch held", err, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took := time.Since(start); took < 10*time.Second {
		t.Fatalf("stalled after %v: before the limit", took)
	}
}

// A partition whose batch is still being handled (Outcome.Later) when a
// second worker joins and the partition's share moves to it is not let go
// until the batch's outcome came: the new owner is never handed the held
// signal (no second run of it, nothing reordered), and it handles the
// partition's next signal once the first worker let go.
func TestHeldPartitionMovesAfterItsOutcome(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := NewKeys("moves:", 2)
	moved := 1 // share: worker "b" (rank 1 of 2) takes partition 1
	sid := "s"
	for keys.PartitionOf(sid) != moved {
		sid += "s"
	}
	var mu sync.Mutex
	handed := map[string][]string{} // worker → signal names handed to it
	held := make(chan Outcome, 1)
	heldBatch := make(chan Batch, 1)
	handler := func(name string) Handler {
		return func(ctx context.Context, batches []Batch) []Outcome {
			out := make([]Outcome, len(batches))
			for i, b := range batches {
				mu.Lock()
				for _, s := range b.Signals {
					handed[name] = append(handed[name], s.Name)
				}
				mu.Unlock()
				if b.Signals[0].Name == "slow" {
					heldBatch <- b
					out[i] = Outcome{Later: held}
					continue
				}
				for _, s := range b.Signals {
					if err := rdb.XAck(ctx, keys.Stream(b.Partition), GroupName, s.ID).Err(); err != nil {
						t.Error(err)
					}
				}
				out[i].N = len(b.Signals)
			}
			return out
		}
	}
	got := func(name string) []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(handed[name])
	}
	emit := func(name string) {
		t.Helper()
		sig := &Signal{Kind: KindEvent, SID: sid, Name: name, Args: "[]"}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(sid), Values: sig.Values()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(name string) ConsumerConfig {
		return ConsumerConfig{Keys: keys, Name: name, Block: 100 * time.Millisecond, LeaseTTL: 600 * time.Millisecond}
	}
	a := NewConsumer(srv.Client(t), cfg("a"))
	defer runHandler(t, a, handler("a"))()
	waitFor(t, "a owning both partitions", func() bool { return len(a.Owned()) == 2 })
	emit("slow")
	b := <-heldBatch

	c := NewConsumer(srv.Client(t), cfg("b"))
	defer runHandler(t, c, handler("b"))()
	waitFor(t, "the partition's share moved to b", func() bool { return !slices.Contains(a.Owned(), moved) })
	time.Sleep(3 * 600 * time.Millisecond) // past the lease's TTL: a still holds it
	if owner, _ := rdb.Get(ctx, keys.Lease(moved)).Result(); owner != "a" {
		t.Fatalf("lease of the held partition: %q, want a until its batch's outcome", owner)
	}
	emit("next")
	time.Sleep(300 * time.Millisecond)
	if g := got("b"); len(g) != 0 {
		t.Fatalf("b was handed %q while a's batch was held", g)
	}
	for _, s := range b.Signals {
		if err := rdb.XAck(ctx, keys.Stream(b.Partition), GroupName, s.ID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	held <- Outcome{N: len(b.Signals)}
	waitFor(t, "b handling the partition's next signal", func() bool { return slices.Contains(got("b"), "next") })
	if ga, gb := got("a"), got("b"); !slices.Equal(ga, []string{"slow"}) || !slices.Equal(gb, []string{"next"}) {
		t.Fatalf("handed out: a %q, b %q; want a [slow], b [next]", ga, gb)
	}
}
