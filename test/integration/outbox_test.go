package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// A sender relays numbered messages to a room whose members are in other
// partitions while one of the two workers is killed (SIGKILL) and a third
// joins: every member gets every message exactly once, in the order sent.
// On one Redis each relay is applied by the commit's one script; on a
// Redis Cluster whose partitions are spread it goes through the sender's
// partition's outbox (docs/redis.md, "Effects across partitions").
func TestRoomRelayAcrossPartitionsSurvivesWorkerKill(t *testing.T) {
	// Parallel: each case has a Redis (or Redis Cluster) and cluster of
	// its own; it waits on lease expiry after the kill.
	t.Parallel()
	t.Run("one node", func(t *testing.T) { roomRelayWorkerKill(t, nil) })
	t.Run("redis cluster", func(t *testing.T) {
		rc := testredis.StartCluster(t, 3, 0)
		roomRelayWorkerKill(t, []string{"-redis", rc.URL()})
	})
}

// roomRelayWorkerKill runs TestRoomRelayAcrossPartitionsSurvivesWorkerKill
// with the gateways and workers given redisFlags.
func roomRelayWorkerKill(t *testing.T, redisFlags []string) {
	c := newCluster(t)
	g1, g2 := c.gateway("a", redisFlags...), c.gateway("b", redisFlags...)
	w1 := c.worker("w1", "echo", redisFlags...)
	c.worker("w2", "echo", redisFlags...)
	keys := bus.NewKeys("", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender := dial(t, "websocket", urls(g1))
	var members []string
	got := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const messages = 150
	for i := 0; len(members) < 6 && i < 50; i++ {
		transport := "websocket"
		if i%2 == 1 {
			transport = "xhr-polling"
		}
		cl := dial(t, transport, urls(g1, g2))
		if keys.PartitionOf(cl.SID) == keys.PartitionOf(sender.SID) {
			continue // another partition than the sender's: its relays cross
		}
		if ack, err := cl.EmitAck(ctx, "", "join", "r"); err != nil || string(ack) != "[true]" {
			t.Fatalf("join: %s %v", ack, err)
		}
		members = append(members, cl.SID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range messages {
				args, err := cl.NextEvent(ctx, "", "relay")
				if err != nil {
					return
				}
				mu.Lock()
				got[cl.SID] = append(got[cl.SID], string(args))
				mu.Unlock()
			}
		}()
	}
	if len(members) < 6 {
		t.Fatalf("%d members outside the sender's partition", len(members))
	}
	for n := 1; n <= messages; n++ {
		if n == 40 {
			c.worker("w3", "echo", redisFlags...) // a rebalance
		}
		if n == 80 {
			w1.kill() // and a crash
		}
		if ack, err := sender.EmitAck(ctx, "", "to", "r", n); err != nil || string(ack) != "[true]" {
			t.Fatalf("relay #%d: %s %v", n, ack, err)
		}
	}
	wg.Wait()
	want := make([]string, messages)
	for n := range want {
		want[n] = fmt.Sprintf("[%d]", n+1)
	}
	for _, sid := range members {
		if g := got[sid]; !slices.Equal(g, want) {
			t.Errorf("member %s (partition %d) got %d relays, want 1..%d once each in order: %q",
				sid, keys.PartitionOf(sid), len(g), messages, g)
		}
	}
}
