package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

// routeLog runs a RouteReader and records what it reports.
type routeLog struct {
	mu       sync.Mutex
	routes   []string
	gaps     []Gap
	failures int
	resumes  int
}

func (l *routeLog) snapshot() ([]string, []Gap, int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.routes), slices.Clone(l.gaps), l.failures, l.resumes
}

// startReader opens key and reads it until the test ends.
func startReader(t *testing.T, rdb redis.UniversalClient, key string) (*routeLog, *RouteReader) {
	t.Helper()
	l := &routeLog{}
	r := NewRouteReader(rdb, key, RouteReaderConfig{
		Block: 100 * time.Millisecond, TrimEvery: 50 * time.Millisecond, Keep: 50,
		Route: func(msg string) { l.mu.Lock(); l.routes = append(l.routes, msg); l.mu.Unlock() },
		Gap:   func(g Gap) { l.mu.Lock(); l.gaps = append(l.gaps, g); l.mu.Unlock() },
		Failed: func(error) {
			l.mu.Lock()
			l.failures++
			l.mu.Unlock()
		},
		Resumed: func(time.Duration) { l.mu.Lock(); l.resumes++; l.mu.Unlock() },
	})
	if err := r.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, r
}

func numbered(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, "D\ns\n0\n"+strconv.Itoa(i))
	}
	return out
}

// Entries are read once each, in order, from the one after the stream was
// opened (what an earlier process of the node left is skipped); ids are
// dense; writers never create the stream; the reader trims what it read.
func TestRouteReaderReadsInOrder(t *testing.T) {
	ctx := context.Background()
	rdb := testredis.Start(t).Client(t)
	key := NewKeys("t:", 1).RouteStream(0, "gw-1")
	if _, err := AppendRoute(ctx, rdb, key, "D\ns\n0\nbefore"); !errors.Is(err, ErrRouteStreamLost) {
		t.Fatalf("append to a stream never opened: %v, want ErrRouteStreamLost", err)
	}
	if n, _ := rdb.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("AppendRoute created the stream")
	}
	if err := NewRouteReader(rdb, key, RouteReaderConfig{}).Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendRoute(ctx, rdb, key, "D\ns\n0\nfor an earlier process"); err != nil {
		t.Fatal(err)
	}
	l, _ := startReader(t, rdb, key)
	want := numbered(1, 500)
	for i, msg := range want {
		seq, err := AppendRoute(ctx, rdb, key, msg)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+4) { // the first open, one entry, the second open
			t.Fatalf("entry %d has sequence number %d", i, seq)
		}
	}
	waitFor(t, "500 routes read", func() bool { r, _, _, _ := l.snapshot(); return len(r) >= 500 })
	routes, gaps, _, _ := l.snapshot()
	if !slices.Equal(routes, want) || len(gaps) != 0 {
		t.Fatalf("read %d routes (first %q), gaps %v", len(routes), routes[0], gaps)
	}
	waitFor(t, "read entries trimmed", func() bool {
		n, _ := rdb.XLen(ctx, key).Result()
		return n < 200 // MINID ~ trims whole nodes of 100 entries; the reader keeps the last 50
	})
}

// A dropped connection (CLIENT KILL) and a stalled Redis (SIGSTOP) lose
// nothing: the reader resumes from the last entry it read, reporting the
// outage once and the resume once, and no gap. (The reader's client here
// does not retry, so the dropped connection fails a read; go-redis's
// default client retries it unseen.)
func TestRouteReaderResumesAfterOutages(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	key := NewKeys("t:", 1).RouteStream(0, "gw-1")
	l, _ := startReader(t, rdb, key)
	writer := srv.Client(t)
	var want []string
	appendN := func(n int) {
		for _, msg := range numbered(len(want)+1, len(want)+n) {
			if _, err := AppendRoute(ctx, writer, key, msg); err != nil {
				t.Fatal(err)
			}
			want = append(want, msg)
		}
	}
	appendN(100)
	waitFor(t, "first routes", func() bool { r, _, _, _ := l.snapshot(); return len(r) == len(want) })

	// The reader's connection dropped: entries appended meanwhile are read.
	if err := writer.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	appendN(100)
	waitFor(t, "the outage reported", func() bool { _, _, f, _ := l.snapshot(); return f == 1 })
	waitFor(t, "routes after CLIENT KILL", func() bool { r, _, _, _ := l.snapshot(); return len(r) == len(want) })

	// Redis stalled for 2 s, longer than a read's block.
	srv.Pause(t)
	time.Sleep(2 * time.Second)
	srv.Resume(t)
	appendN(100)
	waitFor(t, "routes after a pause", func() bool { r, _, _, _ := l.snapshot(); return len(r) == len(want) })

	routes, gaps, failures, resumes := l.snapshot()
	if !slices.Equal(routes, want) {
		t.Fatalf("read %d routes, want %d in order", len(routes), len(want))
	}
	if len(gaps) != 0 {
		t.Fatalf("gaps %v after outages that lost nothing", gaps)
	}
	if failures < 1 || failures != resumes {
		t.Fatalf("%d failures, %d resumes: want each outage reported once, and its end", failures, resumes)
	}
}

// Redis restarted with its data (AOF, fsync always) loses nothing.
func TestRouteReaderAcrossAOFRestart(t *testing.T) {
	ctx := context.Background()
	srv := testredis.StartAOF(t)
	rdb := srv.Client(t)
	key := NewKeys("t:", 1).RouteStream(0, "gw-1")
	l, _ := startReader(t, rdb, key)
	want := numbered(1, 200)
	for _, msg := range want[:100] {
		if _, err := AppendRoute(ctx, rdb, key, msg); err != nil {
			t.Fatal(err)
		}
	}
	srv.Kill(t)
	srv.Restart(t)
	for _, msg := range want[100:] {
		var err error
		for range 50 { // the client reconnects
			if _, err = AppendRoute(ctx, rdb, key, msg); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every route", func() bool { r, _, _, _ := l.snapshot(); return len(r) == len(want) })
	routes, gaps, _, _ := l.snapshot()
	if !slices.Equal(routes, want) || len(gaps) != 0 {
		t.Fatalf("read %d routes, gaps %v", len(routes), gaps)
	}
}

// Losses the reader cannot recover are reported, each once, and reading
// goes on from the new end: entries trimmed unread, the stream deleted
// (FLUSHALL, Redis restarted empty), the stream's last id behind the
// reader's (Redis restarted from older data).
func TestRouteReaderReportsGaps(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	key := NewKeys("t:", 1).RouteStream(0, "gw-1")
	l, r := startReader(t, rdb, key)
	gapsNow := func() []Gap { _, g, _, _ := l.snapshot(); return g }

	// Trimmed: five entries appended and three of them trimmed in one
	// MULTI, so the reader cannot read them in between.
	before := r.Last()
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 5 {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, NoMkStream: true, ID: "0-*", Values: []string{RouteField, fmt.Sprint("D\ns\n0\nlost ", i)}})
		}
		p.XTrimMaxLen(ctx, key, 2)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "trimmed gap", func() bool { return len(gapsNow()) == 1 })
	// Found by the read (the next entry is not the one after the last
	// read), or by the idle reader's check (the last entry read is gone).
	if g := gapsNow()[0]; g.Reason != GapTrimmed || g.After != before {
		t.Fatalf("gap %+v, want trimmed after %d", g, before)
	}

	// Lost: the stream is deleted; the reader opens it again.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lost gap", func() bool { return len(gapsNow()) == 2 })
	if g := gapsNow()[1]; g.Reason != GapLost {
		t.Fatalf("gap %+v, want stream_lost", g)
	}
	if _, err := AppendRoute(ctx, rdb, key, "D\ns\n0\nafter the loss"); err != nil {
		t.Fatalf("append after the reader reopened the stream: %v", err)
	}
	waitFor(t, "route after the loss", func() bool {
		rs, _, _, _ := l.snapshot()
		return len(rs) > 0 && rs[len(rs)-1] == "D\ns\n0\nafter the loss"
	})

	// Rolled back: the stream comes back shorter than what was read.
	n, _, _, _ := l.snapshot()
	for range 5 {
		if _, err := AppendRoute(ctx, rdb, key, "D\ns\n0\nread"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "five more read", func() bool { rs, _, _, _ := l.snapshot(); return len(rs) == len(n)+5 })
	read := r.Last()
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "0-*", Values: []string{RouteField, "P\nopen\n"}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rolled back gap", func() bool { return len(gapsNow()) == 3 })
	if g := gapsNow()[2]; g.Reason != GapRolledBack || g.After != read || g.Next != 2 {
		t.Fatalf("gap %+v, want rolled_back after %d, the stream opened again at 2", g, read)
	}
	if _, err := AppendRoute(ctx, rdb, key, "D\ns\n0\nafter the rollback"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route after the rollback", func() bool {
		rs, _, _, _ := l.snapshot()
		return len(rs) > 0 && rs[len(rs)-1] == "D\ns\n0\nafter the rollback"
	})
	if n := len(gapsNow()); n != 3 {
		t.Fatalf("%d gaps, want 3", n)
	}
}

func TestParseRouteSeq(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want uint64
		ok   bool
	}{{"0-1", 1, true}, {"0-18446744073709551615", 1<<64 - 1, true}, {"1-1", 0, false}, {"0-", 0, false}, {"0-x", 0, false}, {"", 0, false}} {
		got, err := ParseRouteSeq(tc.id)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRouteSeq(%q) = %d, %v", tc.id, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadRoute) {
			t.Errorf("ParseRouteSeq(%q): %v is not ErrBadRoute", tc.id, err)
		}
	}
}

// A rollback the reader can place (the stream comes back as it was a few
// entries ago, as on a replica that lagged, then goes on): the reader goes
// back to the last entry the stream still holds, reports the routes read
// after it as lost, and reads what the stream holds from there. A stream
// that holds none of the entries it remembers is a plain rolled_back gap
// (TestRouteReaderReportsGaps).
func TestRouteReaderRewindsARollback(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	key := NewKeys("t:", 1).RouteStream(0, "gw-1")
	l, r := startReader(t, rdb, key)
	for _, m := range numbered(1, 10) {
		if _, err := AppendRoute(ctx, rdb, key, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ten read", func() bool { rs, _, _, _ := l.snapshot(); return len(rs) == 10 })
	read := r.Last()
	held, err := rdb.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The stream as it was after route 7, then two routes committed after
	// the rollback.
	kept := held[:len(held)-3]
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		for _, e := range kept {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: e.ID, Values: e.Values})
		}
		for _, m := range []string{"D\ns\n0\nnew 1", "D\ns\n0\nnew 2"} {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "0-*", Values: []string{RouteField, m}})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rollback found", func() bool { _, g, _, _ := l.snapshot(); return len(g) == 1 })
	_, gaps, _, _ := l.snapshot()
	back, _ := ParseRouteSeq(kept[len(kept)-1].ID)
	if g := gaps[0]; g.Reason != GapRolledBack || !g.Rewound || g.After != back || g.Next != read || !slices.Equal(g.Lost, numbered(8, 10)) {
		t.Fatalf("gap %+v, want rolled_back rewound to %d from %d, routes 8 to 10 lost", g, back, read)
	}
	waitFor(t, "the routes after the rollback", func() bool { rs, _, _, _ := l.snapshot(); return len(rs) == 12 })
	rs, _, _, _ := l.snapshot()
	if want := append(numbered(1, 10), "D\ns\n0\nnew 1", "D\ns\n0\nnew 2"); !slices.Equal(rs, want) {
		t.Fatalf("routes %q, want %q", rs, want)
	}
}

// The reader remembers at most Keep entries and KeepBytes bytes of them
// (always the last one read), and trims the stream to the oldest it
// remembers.
func TestRouteReaderRemembers(t *testing.T) {
	r := &RouteReader{cfg: RouteReaderConfig{Keep: 3, KeepBytes: 10}}
	r.remember(1, "aaaa")
	r.remember(2, "bbbb")
	if len(r.recent) != 2 || r.recentBytes != 8 {
		t.Fatalf("recent %v (%d bytes)", r.recent, r.recentBytes)
	}
	r.remember(3, "cccc") // 12 bytes: the oldest goes
	if len(r.recent) != 2 || r.recent[0].seq != 2 || r.recentBytes != 8 {
		t.Fatalf("recent %v (%d bytes)", r.recent, r.recentBytes)
	}
	r.remember(4, "d")
	r.remember(5, "e") // 4 entries: the oldest goes
	if len(r.recent) != 3 || r.recent[0].seq != 3 || r.recentBytes != 6 {
		t.Fatalf("recent %v (%d bytes)", r.recent, r.recentBytes)
	}
	r.remember(6, "a message longer than KeepBytes")
	if len(r.recent) != 1 || r.last != 6 || r.lastMsg != r.recent[0].msg {
		t.Fatalf("recent %v, last %d", r.recent, r.last)
	}
}

// Readers run together (one XREAD for all their streams) each read their
// own stream in order; a stream Redis lost is found by its reader while
// another stream stays busy (each reader idle for its Block checks its
// own), and only that reader reports a gap; an outage is reported to every
// reader, and its end.
func TestRouteReadersTogether(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	writer := srv.Client(t)
	keys := NewKeys("t:", 3)
	logs := make([]*routeLog, 3)
	readers := make([]*RouteReader, 3)
	for p := range readers {
		l := &routeLog{}
		logs[p] = l
		readers[p] = NewRouteReader(rdb, keys.RouteStream(p, "gw-1"), RouteReaderConfig{
			Block: 100 * time.Millisecond, TrimEvery: 50 * time.Millisecond, Keep: 50,
			Route:   func(msg string) { l.mu.Lock(); l.routes = append(l.routes, msg); l.mu.Unlock() },
			Gap:     func(g Gap) { l.mu.Lock(); l.gaps = append(l.gaps, g); l.mu.Unlock() },
			Failed:  func(error) { l.mu.Lock(); l.failures++; l.mu.Unlock() },
			Resumed: func(time.Duration) { l.mu.Lock(); l.resumes++; l.mu.Unlock() },
		})
		if err := readers[p].Open(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); RunRouteReaders(rctx, readers...) }()
	t.Cleanup(func() { cancel(); <-done })

	want := make([][]string, 3)
	for i := 1; i <= 300; i++ {
		p := i % 3
		msg := fmt.Sprintf("D\ns%d\n0\n%d", p, i)
		if _, err := AppendRoute(ctx, writer, keys.RouteStream(p, "gw-1"), msg); err != nil {
			t.Fatal(err)
		}
		want[p] = append(want[p], msg)
	}
	for p, l := range logs {
		waitFor(t, fmt.Sprint("the routes of stream ", p), func() bool { r, _, _, _ := l.snapshot(); return len(r) == len(want[p]) })
		if r, gaps, _, _ := l.snapshot(); !slices.Equal(r, want[p]) || len(gaps) != 0 {
			t.Fatalf("stream %d: read %q with gaps %v, want %q", p, r, gaps, want[p])
		}
	}

	// Stream 2 is lost while stream 0 stays busy.
	busy, stop := context.WithCancel(ctx)
	var writes sync.WaitGroup
	writes.Add(1)
	go func() {
		defer writes.Done()
		for busy.Err() == nil {
			_, _ = AppendRoute(ctx, writer, keys.RouteStream(0, "gw-1"), "D\ns0\n0\nbusy")
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if err := writer.Del(ctx, keys.RouteStream(2, "gw-1")).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lost stream's gap", func() bool { _, g, _, _ := logs[2].snapshot(); return len(g) == 1 })
	stop()
	writes.Wait()
	if _, g, _, _ := logs[2].snapshot(); g[0].Reason != GapLost {
		t.Fatalf("gap %+v, want stream_lost", g[0])
	}
	for _, p := range []int{0, 1} {
		if _, g, _, _ := logs[p].snapshot(); len(g) != 0 {
			t.Fatalf("stream %d reported gaps %v; only stream 2 was lost", p, g)
		}
	}
	if _, err := AppendRoute(ctx, writer, keys.RouteStream(2, "gw-1"), "D\ns2\n0\nafter"); err != nil {
		t.Fatalf("append after the reader opened the lost stream again: %v", err)
	}
	waitFor(t, "the route after the loss", func() bool {
		r, _, _, _ := logs[2].snapshot()
		return r[len(r)-1] == "D\ns2\n0\nafter"
	})

	// An outage: every reader reports it once, and its end.
	if err := writer.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for p, l := range logs {
		waitFor(t, fmt.Sprint("stream ", p, "'s outage and its end"), func() bool { _, _, f, r := l.snapshot(); return f == 1 && r == 1 })
	}
}
