package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// fakeShards has, per scenario, one run on 1 primary and one on 3, and a
// failed run.
func fakeShards() *ShardsReport {
	ms := func(v ...float64) []ShardUsage {
		u := make([]ShardUsage, len(v))
		for i, x := range v {
			u[i] = ShardUsage{Node: "n", CPU: time.Duration(x * float64(time.Millisecond)), Commands: int64(x * 10), PeakMem: int64(x * 1000)}
		}
		return u
	}
	run := func(n int, sc string, ops int64, shards []ShardUsage) ShardRun {
		return ShardRun{Primaries: n, Scenario: sc, Index: 1, Shards: shards,
			Costs:  []ProcCost{{Process: "gateway", CPUMicros: 50}, {Process: "worker", CPUMicros: 30}},
			Result: &Result{Clients: 1000, Connected: 1000, Ops: ops, OpsPerS: float64(ops) / 5, ConnectsPerS: 2000}}
	}
	return &ShardsReport{
		RunsPer: 1, Duration: 5 * time.Second, Command: "make build && bin/benchrun -scenarios shards -runs 1",
		Started: time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC), Finished: time.Date(2026, 12, 1, 7, 5, 0, 0, time.UTC),
		LoadBefore: "0.10 0.10 0.10", LoadAfter: "1.00 0.50 0.20",
		Runs: []ShardRun{
			// echo: 1 primary 400 ms for 10000 acks = 40 µs; 3 primaries
			// 100 / 200 / 150 ms = 20 / 15 / 10 µs, 45 in all, busiest 44%.
			run(1, "echo", 10000, ms(400)),
			run(3, "echo", 10000, ms(100, 200, 150)),
			// connect: 1000 sessions, 200 ms = 200 µs; 3: 90 / 80 / 70 µs.
			run(1, "connect", 1000, ms(200)),
			run(3, "connect", 1000, ms(80, 90, 70)),
			// broadcast: 1000 members, 20000 deliveries; 1 primary 400 ms
			// = 20 µs, less the connects 200 µs × 1000 / 20000 = 10: 10 µs.
			// 3: 160 / 140 / 120 ms = 8 / 7 / 6 µs, less 4.5 / 4 / 3.5: 3.5 /
			// 3 / 2.5.
			run(1, "broadcast", 20000, ms(400)),
			run(3, "broadcast", 20000, ms(160, 140, 120)),
			{Primaries: 3, Scenario: "echo", Index: 2, Err: "siobench: exit status 1"},
		},
	}
}

func TestRenderShards(t *testing.T) {
	md := renderShards(fakeShards())
	if !strings.HasPrefix(md, shardsBegin+"\n") || !strings.HasSuffix(md, shardsEnd+"\n") {
		t.Fatalf("no markers around the section:\n%s", md)
	}
	for _, want := range []string{
		"| echo (per ack) | 1 | 1 | 2000 | 40.0 | 40.0 | 100% | 0.40 | 50.0 | 30.0 |",
		// Shards sorted by CPU, busiest first; commands in the same order.
		"| echo (per ack) | 3 | 1 | 2000 | 20.0 / 15.0 / 10.0 | 45.0 | 44% | 0.20 / 0.15 / 0.10 | 50.0 | 30.0 |",
		"| connect (per session) | 3 | 1 | 2000 | 90.0 / 80.0 / 70.0 | 240.0 | 38% |",
		"| broadcast (per delivery) | 1 | 1 | 4000 | 10.0 | 10.0 | 100% |",
		"| broadcast (per delivery) | 3 | 1 | 4000 | 3.5 / 3.0 / 2.5 | 9.0 | 39% |",
		// Memory per member: 400 ms → 400000 bytes over 1000 members.
		"1 primaries 400 bytes; 3 primaries 160 / 140 / 120 bytes;",
		// Measured: 10⁶ / 40 = 25,000 acks/s; 10⁶ / 200; 10⁶ / 10; 2³⁰ / 400.
		"| 1 (measured) | 100% | 25,000 | 5,000 | 100,000 | 2,700,000 |",
		// 3: the busiest shard: 10⁶ / 20, / 90, / 3.5; 2³⁰ / 160.
		"| 3 (measured) | 44% | 50,000 | 11,000 | 290,000 | 6,700,000 |",
		// 4 shards: 4 of 16 partitions on the busiest: 10⁶ / (45 × 0.25) = 88,889;
		// memory 140 × 3 = 420 bytes per session, × 0.25.
		"| 4 | 25% | 89,000 | 17,000 | 440,000 | 10,000,000 |",
		"| 3 | echo | 2 | failed: siobench: exit status 1 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the section lacks %q:\n%s", want, md)
		}
	}
}

func TestSpliceShards(t *testing.T) {
	report := "# Benchmarks\n\nresults\n\n## Analysis\n\ntext\n"
	first := spliceShards(report, shardsBegin+"\none\n"+shardsEnd+"\n")
	if !strings.Contains(first, "results\n\n"+shardsBegin+"\none\n"+shardsEnd+"\n\n## Analysis") {
		t.Fatalf("the section is not before the Analysis:\n%s", first)
	}
	second := spliceShards(first, shardsBegin+"\ntwo\n"+shardsEnd+"\n")
	if strings.Contains(second, "one") || strings.Count(second, shardsBegin) != 1 || !strings.Contains(second, "two") {
		t.Fatalf("the section is not replaced:\n%s", second)
	}
}

func TestBusiestPartitionsAndRoughly(t *testing.T) {
	for _, c := range []struct {
		p, n int
		want float64
	}{{16, 1, 1}, {16, 3, 6.0 / 16}, {16, 4, 0.25}, {16, 16, 1.0 / 16}, {16, 32, 1.0 / 16}} {
		if got := busiestPartitions(c.p, c.n); got != c.want {
			t.Errorf("busiestPartitions(%d, %d) = %v, want %v", c.p, c.n, got, c.want)
		}
	}
	for v, want := range map[float64]string{88889: "89,000", 1234567: "1,200,000", 25000: "25,000", 99: "99", 7.4: "7"} {
		if got := roughly(v); got != want {
			t.Errorf("roughly(%v) = %q, want %q", v, got, want)
		}
	}
}

// The cluster benchrun starts answers as a Redis Cluster of 3 primaries,
// every slot served, at the URL the gateway and worker get.
func TestStartRedisCluster(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no redis-server on PATH (CI is set: nothing may skip)")
		}
		t.Skip("no redis-server on PATH (apt-get install redis-server)")
	}
	ctx := context.Background()
	rc, err := startRedisCluster(ctx, bin, t.TempDir(), 3)
	defer rc.stop()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseClusterURL(rc.url())
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Addrs) != 3 {
		t.Fatalf("the URL %s names %d nodes, want 3", rc.url(), len(opts.Addrs))
	}
	c := redis.NewClusterClient(opts)
	defer c.Close()
	for i := range 100 {
		if err := c.Set(ctx, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 3 {
		t.Fatalf("%d shards, want 3", len(shards))
	}
}
