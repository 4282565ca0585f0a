package testredis

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Three primaries: every slot served, keys spread over all three, and the
// URL, the client and PrimaryFor agree with what go-redis finds.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3, 0)
	ctx := context.Background()
	if len(c.Nodes) != 3 || len(c.Primaries(t)) != 3 {
		t.Fatalf("%d nodes, %d primaries; want 3 and 3", len(c.Nodes), len(c.Primaries(t)))
	}
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("URL %s: %v", c.URL(), err)
	}
	if !slices.Equal(opt.Addrs, c.Addrs()) {
		t.Fatalf("URL names %v, want %v", opt.Addrs, c.Addrs())
	}
	rdb := c.Client(t)
	owners := map[*ClusterNode]int{}
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("k%d", i)
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		owner := c.PrimaryFor(t, key)
		owners[owner]++
		// The key is on that node, read without the cluster client.
		if got, err := owner.Client(t).Get(ctx, key).Int(); err != nil || got != i {
			t.Fatalf("GET %s on %s: %d %v", key, owner.Addr, got, err)
		}
		if owner.Role(t) != "master" {
			t.Fatalf("PrimaryFor(%s) = %s, a %s", key, owner.Addr, owner.Role(t))
		}
	}
	if len(owners) != 3 {
		t.Fatalf("30 keys on %d primaries, want all 3", len(owners))
	}
}

// Three primaries with a replica each: the primary of a key killed with
// SIGKILL, its replica takes over within a few seconds with the data, and
// the killed node restarted rejoins as a replica.
func TestStartClusterFailover(t *testing.T) {
	c := StartCluster(t, 3, 1)
	ctx := context.Background()
	if len(c.Nodes) != 6 || len(c.Primaries(t)) != 3 {
		t.Fatalf("%d nodes, %d primaries; want 6 and 3", len(c.Nodes), len(c.Primaries(t)))
	}
	rdb := c.Client(t)
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := c.PrimaryFor(t, "k")
	if n, err := old.Client(t).Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	start := time.Now()
	old.Kill(t)
	next := c.WaitFailover(t, old, 15*time.Second)
	took := time.Since(start)
	if next == old || next.Role(t) != "master" || c.PrimaryFor(t, "k") != next {
		t.Fatalf("after the failover %s (%s) serves k, PrimaryFor says %s", next.Addr, next.Role(t), c.PrimaryFor(t, "k").Addr)
	}
	if took > 10*time.Second {
		t.Fatalf("failover took %v, want a few seconds with a %v node timeout", took, ClusterNodeTimeout)
	}
	t.Logf("replica promoted %v after the primary was killed", took.Round(10*time.Millisecond))
	var got string
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, err = rdb.Get(ctx, "k").Result(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster client never read k again: %v", err)
		}
	}
	if got != "before" {
		t.Fatalf("k = %q after the failover, want the replicated value", got)
	}
	t.Logf("the cluster client read k again %v after the primary was killed", time.Since(start).Round(10*time.Millisecond))
	old.Restart(t)
	c.WaitReady(t, 15*time.Second)
	if r := old.Role(t); r != "slave" {
		t.Fatalf("the restarted old primary is a %s, want a replica of %s", r, next.Addr)
	}
}

// Fewer than three primaries (which redis-cli refuses) are joined by hand:
// one primary with one replica holds every slot.
func TestStartClusterOnePrimary(t *testing.T) {
	c := StartCluster(t, 1, 1)
	ctx := context.Background()
	if p := c.Primaries(t); len(p) != 1 || p[0] != c.Nodes[0] || c.Nodes[1].Role(t) != "slave" {
		t.Fatalf("primaries %v, want node 0 alone", p)
	}
	if err := c.Client(t).Set(ctx, "{a}x", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if c.PrimaryFor(t, "{a}x") != c.Nodes[0] || c.PrimaryFor(t, "zzz") != c.Nodes[0] {
		t.Fatal("a key not on the only primary")
	}
}
