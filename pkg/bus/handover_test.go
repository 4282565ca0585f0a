package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

func TestApplyHandovers(t *testing.T) {
	live := map[string]bool{"a": true, "b": true}
	rec := func(to, from string) string { return fmt.Sprintf(`{"to":%q,"from":%q}`, to, from) }
	for _, tc := range []struct {
		name      string
		want      []int
		records   map[string]string
		out       []int
		staleKeys []string
	}{
		{"none", []int{0, 2}, nil, []int{0, 2}, nil},
		{"to me", []int{0, 2}, map[string]string{"1": rec("a", "b")}, []int{0, 1, 2}, nil},
		{"from me", []int{0, 2}, map[string]string{"2": rec("b", "a")}, []int{0}, nil},
		{"both ways", []int{0, 2}, map[string]string{"2": rec("b", "a"), "3": rec("a", "b")}, []int{0, 3}, nil},
		{"to a gone worker", []int{0, 2}, map[string]string{"2": rec("c", "a")}, []int{0, 2}, []string{"2"}},
		{"from a gone worker", []int{0, 2}, map[string]string{"1": rec("a", "c")}, []int{0, 2}, []string{"1"}},
		{"unreadable", []int{0, 2}, map[string]string{"2": "{", "x": rec("b", "a"), "9": rec("b", "a")}, []int{0, 2}, []string{"2", "9", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stale := applyHandovers(tc.want, "a", tc.records, live, 4)
			if fmt.Sprint(out) != fmt.Sprint(tc.out) {
				t.Errorf("partitions %v, want %v", out, tc.out)
			}
			var keys []string
			for k := range stale {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if fmt.Sprint(keys) != fmt.Sprint(tc.staleKeys) {
				t.Errorf("stale %v, want %v", keys, tc.staleKeys)
			}
		})
	}
}

// TestHandOverKeepsOrder: consumer a serves events "x" only, b serves "x"
// and "y" (a rolling deploy's old and new versions). a hands each
// partition over to b when it meets a "y": every signal is handled exactly
// once, every "y" by b, and each partition's signals in stream order. The
// handover records are dropped once a leaves.
func TestHandOverKeepsOrder(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := NewKeys("handover:", 4)
	var mu sync.Mutex
	handled := map[int][]string{} // partition -> "id name by"
	handler := func(name string, serves []string) Handler {
		return func(ctx context.Context, batches []Batch) []Outcome {
			out := make([]Outcome, len(batches))
			for i, b := range batches {
				for _, s := range b.Signals {
					if !slices.Contains(serves, s.Name) {
						out[i].HandOver = "b"
						break
					}
					if err := rdb.XAck(ctx, keys.Stream(b.Partition), GroupName, s.ID).Err(); err != nil {
						out[i].Err = err
						break
					}
					mu.Lock()
					handled[b.Partition] = append(handled[b.Partition], s.ID+" "+s.Name+" "+name)
					mu.Unlock()
					out[i].N++
				}
			}
			return out
		}
	}
	var handovers sync.Map
	newConsumer := func(name, serves string) *Consumer {
		return NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: name, LeaseTTL: 1500 * time.Millisecond, Block: 100 * time.Millisecond,
			Serves:     func() string { return serves },
			OnHandOver: func(p int) { handovers.Store(name+fmt.Sprint(p), true) }})
	}
	a := newConsumer("a", "x")
	stopA := runHandler(t, a, handler("a", []string{"x"}))
	waitFor(t, "a owning all 4", func() bool { return len(a.Owned()) == 4 })
	b := newConsumer("b", "x,y")
	runHandler(t, b, handler("b", []string{"x", "y"}))
	waitFor(t, "an even share", func() bool { return fmt.Sprint(a.Owned()) == "[0 2]" && fmt.Sprint(b.Owned()) == "[1 3]" })
	waitFor(t, "a seeing what b serves", func() bool { return a.Peers()["b"] == "x,y" })

	// Per partition, x x y x x y ...: a handles the first x's of its
	// partitions, then hands them over at the first y.
	var sent = map[int][]string{}
	for i := range 40 {
		p := i % 4
		name := "x"
		if i/4%3 == 2 {
			name = "y"
		}
		sig := &Signal{Kind: KindEvent, SID: fmt.Sprintf("sid%d", i), Name: name, Args: "[]"}
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(p), Values: sig.Values()}).Result()
		if err != nil {
			t.Fatal(err)
		}
		sent[p] = append(sent[p], id+" "+name)
	}
	waitFor(t, "all 40 handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, h := range handled {
			n += len(h)
		}
		return n >= 40
	})
	time.Sleep(300 * time.Millisecond) // a duplicate would show now
	mu.Lock()
	for p := range 4 {
		var got []string
		for _, h := range handled[p] {
			f := strings.Fields(h) // id, name, by
			got = append(got, f[0]+" "+f[1])
			if strings.HasSuffix(h, " y a") {
				t.Errorf("partition %d: a handled %s", p, h)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(sent[p]) {
			t.Errorf("partition %d handled\n%v\nwant (stream order, once each)\n%v", p, handled[p], sent[p])
		}
	}
	mu.Unlock()
	for _, p := range []int{0, 2} {
		if _, ok := handovers.Load("a" + fmt.Sprint(p)); !ok {
			t.Errorf("a did not hand partition %d over", p)
		}
	}
	if fmt.Sprint(b.Owned()) != "[0 1 2 3]" || len(a.Owned()) != 0 {
		t.Errorf("after the handovers a owns %v, b %v; want b all 4", a.Owned(), b.Owned())
	}

	// a leaves: its records no longer hold, and b (the only one left)
	// deletes them, and a's description.
	stopA()
	waitFor(t, "the records and a's description gone", func() bool {
		n, _ := rdb.HLen(ctx, keys.Handovers(GroupName)).Result()
		_, err := rdb.HGet(ctx, keys.GroupServes(GroupName), "a").Result()
		return n == 0 && err == redis.Nil
	})
}

// A partition being released keeps its lease until the read loop let go of
// it, however long the batch in hand (or a blocking read, up to Block)
// takes beyond the lease's TTL: otherwise the next owner takes the
// partition and claims its pending entries while the old owner still
// handles them or still waits in a read, and a signal that read then
// receives waits for the 30 s idle reclaim. Here a's handler holds a
// batch for 1.5 s (the lease lasts 600 ms) while b joins: b must not own
// the partition before a is done with it.
func TestReleaseKeepsLeaseUntilLetGo(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := NewKeys("release:", 2)
	var aDone atomic.Int64 // unix ms when a's slow batch ended
	slow := make(chan struct{})
	a := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "a", LeaseTTL: 600 * time.Millisecond})
	runHandler(t, a, func(ctx context.Context, batches []Batch) []Outcome {
		for _, bt := range batches {
			if bt.Partition == 1 && aDone.Load() == 0 {
				close(slow)
				time.Sleep(1500 * time.Millisecond)
				aDone.Store(time.Now().UnixMilli())
			}
		}
		return ackAll(ctx, batches)
	})
	waitFor(t, "a owning both", func() bool { return len(a.Owned()) == 2 })
	sig := &Signal{Kind: KindEvent, SID: "x", Name: "e", Args: "[]"}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Stream(1), Values: sig.Values()}).Err(); err != nil {
		t.Fatal(err)
	}
	<-slow // a is in its slow batch of partition 1
	b := NewConsumer(srv.Client(t), ConsumerConfig{Keys: keys, Name: "b", LeaseTTL: 600 * time.Millisecond})
	runConsumer(t, b)
	var bGot int64
	waitFor(t, "b owning partition 1", func() bool {
		if slices.Contains(b.Owned(), 1) {
			bGot = time.Now().UnixMilli()
			return true
		}
		return false
	})
	if done := aDone.Load(); done == 0 || bGot < done {
		t.Fatalf("b took partition 1 while a was still handling its batch (a done at %d, b owned it at %d): the lease lapsed during the release", done, bGot)
	}
}

// Check says ErrStarting until the consumer has been a member of its group
// for a rebalance period and a half (its peers have read what it serves),
// then nil.
func TestCheckStartGrace(t *testing.T) {
	srv := testredis.Start(t)
	c := NewConsumer(srv.Client(t), ConsumerConfig{Keys: NewKeys("grace:", 2), Name: "a", LeaseTTL: 1500 * time.Millisecond,
		Serves: func() string { return "x" }})
	if err := c.Check(); !errors.Is(err, ErrStarting) {
		t.Fatalf("Check before Run: %v, want ErrStarting", err)
	}
	start := time.Now()
	runConsumer(t, c)
	waitFor(t, "Check ready", func() bool { return c.Check() == nil })
	if d := time.Since(start); d < 750*time.Millisecond {
		t.Fatalf("ready %v after start, want at least 750ms (1.5 x 500ms)", d)
	}
}

// A wait under a millisecond is no BLOCK at all: go-redis sends whole
// milliseconds, and BLOCK 0 would wait forever (a worker's read stalled for
// go-redis's 10 s read timeout when a retry was due within the millisecond).
func TestBlockArg(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		-time.Second: -1, 0: -1, 500 * time.Microsecond: -1, time.Millisecond: time.Millisecond, time.Second: time.Second,
	} {
		if got := blockArg(d); got != want {
			t.Errorf("blockArg(%v) = %v, want %v", d, got, want)
		}
	}
}
