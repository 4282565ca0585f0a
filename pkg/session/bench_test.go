package session

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// BenchmarkApplyEcho measures the commit scripts on the echo path: a
// batch of signals, each acknowledged (XACK) with one delivery to its own
// websocket session, as a worker commits one read, with the default
// partitions and the sessions' gateway routed to (its route streams open).
// "node" commits 20 signals where every partition is on one node (one
// commit_node.lua); "partition" commits 48 as on a Redis Cluster whose
// partitions are spread (Config.PerPartition: a commit.lua per partition,
// 3 signals each on average). Besides the time per batch it reports
// Redis's own CPU per signal (redis-µs/signal, from INFO cpu), the number
// that bounds a cluster's throughput, since every worker shares it, and
// its time in the scripts (script-µs/signal).
func BenchmarkApplyEcho(b *testing.B) {
	b.Run("node", func(b *testing.B) { benchmarkApplyEcho(b, false, 20) })
	b.Run("partition", func(b *testing.B) { benchmarkApplyEcho(b, true, 48) })
}

func benchmarkApplyEcho(b *testing.B, perPartition bool, batch int) {
	const sessions = 100
	ctx := context.Background()
	srv := testredis.Start(b)
	rdb := srv.Client(b)
	keys := bus.NewKeys(fmt.Sprintf("t%d:", prefixSeq.Add(1)), bus.DefaultPartitions)
	st := New(rdb, Config{Keys: keys, Node: "gwA", PerPartition: perPartition})
	tailRoutes(b, rdb, keys, "gwA")
	if err := st.RefreshRoutes(ctx); err != nil {
		b.Fatal(err)
	}
	sids := make([]string, sessions)
	for i := range sids {
		sid, err := st.Create(ctx, Handshake{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
			b.Fatal(err)
		}
		sids[i] = sid
	}
	for p := range keys.Partitions() {
		if err := rdb.XGroupCreateMkStream(ctx, keys.Stream(p), "workers", "$").Err(); err != nil {
			b.Fatal(err)
		}
	}
	// Every entry is written and read (pending) before the clock starts,
	// so the loop and the CPU reading cover the commits only.
	packet := `6:::1+["hello"]`
	commits := make([]Commit, b.N*batch)
	for start := 0; start < len(commits); start += 1000 {
		pipe := rdb.Pipeline()
		ids := make([]*redis.StringCmd, 0, 1000)
		for i := start; i < min(start+1000, len(commits)); i++ {
			ids = append(ids, pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(sids[i%sessions]), Values: []any{"s", "x"}}))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		for j, id := range ids {
			sid := sids[(start+j)%sessions]
			commits[start+j] = Commit{Stream: keys.StreamFor(sid), Group: "workers", ID: id.Val(), Effects: []Effect{DeliverEffect(sid, packet)}}
		}
	}
	for p := range keys.Partitions() {
		err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: "c", Streams: []string{keys.Stream(p), ">"}, Count: int64(len(commits)), Block: -1}).Err()
		if err != nil && err != redis.Nil {
			b.Fatal(err)
		}
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	before := redisCPU(b, rdb)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, err := st.Apply(ctx, commits[i*batch:(i+1)*batch]...)
		if err != nil || n != batch {
			b.Fatalf("Apply = %d, %v; want %d", n, err, batch)
		}
	}
	b.StopTimer()
	b.ReportMetric((redisCPU(b, rdb)-before)/float64(b.N*batch), "redis-µs/signal")
	b.ReportMetric(scriptTime(b, rdb)/float64(b.N*batch), "script-µs/signal")
}

// redisCPU returns the server's user+system CPU time in microseconds.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	var total float64
	for _, line := range infoLines(b, rdb, "cpu") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(fmt.Errorf("INFO cpu %s: %w", k, err))
			}
			total += f * 1e6
		}
	}
	return total
}

// scriptTime returns the time Redis spent in scripts (EVALSHA, and EVAL
// when it did not know one yet) since its stats were reset, in
// microseconds (INFO commandstats: the scripts' own commands included,
// reading the request and writing the reply not): steadier than redisCPU
// on a busy machine.
func scriptTime(b *testing.B, rdb *redis.Client) float64 {
	var total float64
	for _, line := range infoLines(b, rdb, "commandstats") {
		stats, ok := strings.CutPrefix(line, "cmdstat_evalsha:")
		if !ok {
			stats, ok = strings.CutPrefix(line, "cmdstat_eval:")
		}
		if !ok {
			continue
		}
		for _, f := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				usec, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(fmt.Errorf("INFO commandstats: %w", err))
				}
				total += usec
			}
		}
	}
	return total
}

// infoLines returns the lines of INFO section.
func infoLines(b *testing.B, rdb *redis.Client, section string) []string {
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		b.Fatal(err)
	}
	return strings.Split(info, "\r\n")
}

// BenchmarkTouchStream measures the script a POST to a streaming (htmlfile)
// session runs, which records the time of the POST (lh) for the gateway
// holding the stream; redis-µs/op is Redis's own CPU per POST.
func BenchmarkTouchStream(b *testing.B) {
	ctx := context.Background()
	st, rdb := newStore(b, "gwA")
	sid, err := st.Create(ctx, Handshake{})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := st.OpenStream(ctx, sid, "htmlfile"); err != nil {
		b.Fatal(err)
	}
	before := redisCPU(b, rdb)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if cls, _, err := st.Touch(ctx, sid); err != nil || cls != "stream" {
			b.Fatalf("Touch = %q, %v", cls, err)
		}
	}
	b.StopTimer()
	b.ReportMetric((redisCPU(b, rdb)-before)/float64(b.N), "redis-µs/op")
}

// BenchmarkPoll measures a polling session's delivery path: one packet
// delivered to its mailbox (the deliver script) and taken by the next poll
// (the poll script, which also trims the batch the poll before took and
// refreshes the deadline); redis-µs/op is Redis's own CPU per cycle.
func BenchmarkPoll(b *testing.B) {
	ctx := context.Background()
	st, rdb := newStore(b, "gwA")
	sid, err := st.Create(ctx, Handshake{})
	if err != nil {
		b.Fatal(err)
	}
	if r, err := st.Poll(ctx, sid, "xhr-polling", "p", "0", false); err != nil || r.Result != PollAnswer {
		b.Fatalf("first poll = %v, %v", r.Result, err)
	}
	before := redisCPU(b, rdb)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Deliver(ctx, sid, "3:::hello"); err != nil {
			b.Fatal(err)
		}
		r, err := st.Poll(ctx, sid, "xhr-polling", "p", strconv.Itoa(i+1), false)
		if err != nil || r.Result != PollAnswer || len(r.Packets) != 1 {
			b.Fatalf("poll %d = %v %q, %v", i, r.Result, r.Packets, err)
		}
	}
	b.StopTimer()
	b.ReportMetric((redisCPU(b, rdb)-before)/float64(b.N), "redis-µs/op")
}
