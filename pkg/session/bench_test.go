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

// BenchmarkApplyEcho measures the commit script on the echo path: a batch
// of 20 signals, each acknowledged (XACK) with one delivery to a websocket
// session, as a worker commits one read, with the default partitions and
// the sessions' gateway routed to (its route streams open). Besides the
// time per batch it reports Redis's own CPU per signal (redis-µs/signal,
// from INFO cpu), the number that bounds a cluster's throughput, since
// every worker shares it.
func BenchmarkApplyEcho(b *testing.B) {
	const batch, sessions = 20, 100
	ctx := context.Background()
	srv := testredis.Start(b)
	rdb := srv.Client(b)
	keys := bus.NewKeys(fmt.Sprintf("t%d:", prefixSeq.Add(1)), bus.DefaultPartitions)
	st := New(rdb, Config{Keys: keys, Node: "gwA"})
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
	stream := st.Keys().Stream(0)
	if err := rdb.XGroupCreateMkStream(ctx, stream, "workers", "$").Err(); err != nil {
		b.Fatal(err)
	}
	// Every entry is written and read (pending) before the clock starts,
	// so the loop and the CPU reading cover the commits only.
	packet := `6:::1+["hello"]`
	commits := make([]Commit, b.N*batch)
	for start := 0; start < len(commits); start += 1000 {
		pipe := rdb.Pipeline()
		ids := make([]*redis.StringCmd, 0, 1000)
		for i := start; i < min(start+1000, len(commits)); i++ {
			ids = append(ids, pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"s", "x"}}))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		for j, id := range ids {
			commits[start+j] = Commit{Stream: stream, Group: "workers", ID: id.Val(), Effects: []Effect{DeliverEffect(sids[(start+j)%sessions], packet)}}
		}
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: "c", Streams: []string{stream, ">"}, Count: int64(len(commits))}).Err(); err != nil {
		b.Fatal(err)
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

// scriptTime returns the time Redis spent in EVALSHA since its stats were
// reset, in microseconds (INFO commandstats: the script's own commands
// included, reading the request and writing the reply not): steadier than
// redisCPU on a busy machine.
func scriptTime(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		stats, ok := strings.CutPrefix(line, "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, f := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				usec, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(fmt.Errorf("INFO commandstats: %w", err))
				}
				return usec
			}
		}
	}
	return 0
}

// redisCPU returns the server's user+system CPU time in microseconds.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
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
