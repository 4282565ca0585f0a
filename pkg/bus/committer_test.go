package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

// push is a Write that appends v to list key.
func push(key, v string) Write {
	return func(pipe redis.Pipeliner) error {
		pipe.RPush(context.Background(), key, v)
		return nil
	}
}

// TestCommitterOrderPerSession commits from many goroutines at once and
// checks that each session's writes land in the order they were queued,
// with one shard and with several.
func TestCommitterOrderPerSession(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			ctx := context.Background()
			prefix := fmt.Sprintf("order%d:", shards)
			c := NewCommitter(rdb, CommitterConfig{Shards: shards})
			defer c.Close()
			const sessions, each = 20, 50
			var wg sync.WaitGroup
			for s := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sid := "sid" + strconv.Itoa(s)
					// Half synchronous, half queued without waiting:
					// both keep the session's order.
					var pending []<-chan error
					for i := range each {
						w := push(prefix+sid, strconv.Itoa(i))
						if i%2 == 0 {
							if err := c.Commit(ctx, sid, w); err != nil {
								t.Error(err)
								return
							}
							continue
						}
						done, err := c.CommitAsync(ctx, sid, w)
						if err != nil {
							t.Error(err)
							return
						}
						pending = append(pending, done)
					}
					for _, done := range pending {
						if err := <-done; err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			for s := range sessions {
				got, err := rdb.LRange(ctx, prefix+"sid"+strconv.Itoa(s), 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != each {
					t.Fatalf("session %d: %d writes, want %d", s, len(got), each)
				}
				for i, v := range got {
					if v != strconv.Itoa(i) {
						t.Fatalf("session %d: write %d is %s: %v", s, i, v, got)
					}
				}
			}
		})
	}
}

// TestCommitterBatches holds the first batch's commit until more requests
// are queued behind it: they go together as the next batch, at most
// MaxBatch at a time, and every request learns its batch's result.
func TestCommitterBatches(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	var (
		mu      sync.Mutex
		batches []int
	)
	c := NewCommitter(rdb, CommitterConfig{Shards: 1, MaxBatch: 8, Observe: func(n int, _ time.Duration, err error) {
		if err != nil {
			t.Errorf("batch of %d: %v", n, err)
		}
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
	}})
	defer c.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	first, err := c.CommitAsync(ctx, "a", func(pipe redis.Pipeliner) error {
		close(entered) // the loop is committing this batch
		<-release
		pipe.RPush(ctx, "batches", "first")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	var queued []<-chan error
	for i := range 20 {
		done, err := c.CommitAsync(ctx, "sid"+strconv.Itoa(i), push("batches", strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, done)
	}
	close(release)
	for _, done := range append([]<-chan error{first}, queued...) {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 8, 8, 4}; fmt.Sprint(batches) != fmt.Sprint(want) {
		t.Fatalf("batch sizes %v, want %v", batches, want)
	}
	if n, _ := rdb.LLen(ctx, "batches").Result(); n != 21 {
		t.Fatalf("%d writes applied, want 21", n)
	}
}

// TestCommitterRedisDown: a batch that cannot be committed fails every
// request in it with a wrapped error, nothing is applied in part, and the
// committer commits again once Redis is back.
func TestCommitterRedisDown(t *testing.T) {
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	ctx := context.Background()
	c := NewCommitter(rdb, CommitterConfig{Timeout: time.Second})
	defer c.Close()
	if err := c.Commit(ctx, "s", push("down", "before")); err != nil {
		t.Fatal(err)
	}
	srv.Kill(t)
	err := c.Commit(ctx, "s", push("down", "lost"), push("down", "lost too"))
	if err == nil || !strings.HasPrefix(err.Error(), "bus: commit batch of 1: ") {
		t.Fatalf("Commit with Redis down = %v, want the batch's error", err)
	}
	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = c.Commit(ctx, "s", push("down", "after"))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Commit after Redis came back: %v", err)
	}
	// The restarted Redis kept nothing, and the failed batch is not
	// applied later.
	got, err := rdb.LRange(ctx, "down", 0, -1).Result()
	if err != nil || fmt.Sprint(got) != "[after]" {
		t.Fatalf("list after the restart = %v, %v; want [after]", got, err)
	}
}

// TestCommitterClose: Close commits what was queued, and Commit afterwards
// fails with ErrCommitterClosed.
func TestCommitterClose(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	c := NewCommitter(rdb, CommitterConfig{})
	var queued []<-chan error
	for i := range 50 {
		done, err := c.CommitAsync(ctx, "sid"+strconv.Itoa(i%7), push("closing", strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, done)
	}
	c.Close()
	for _, done := range queued {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Close returned before a queued request was committed")
		}
	}
	if n, _ := rdb.LLen(ctx, "closing").Result(); n != 50 {
		t.Fatalf("%d writes applied, want 50", n)
	}
	if err := c.Commit(ctx, "s", push("closing", "late")); !errors.Is(err, ErrCommitterClosed) {
		t.Fatalf("Commit after Close = %v, want ErrCommitterClosed", err)
	}
	c.Close() // idempotent
}

// A batch Redis cannot have applied (no connection: Redis is restarting) is
// tried again until the committer's Timeout, and commits once Redis is
// back; a batch whose answer was lost (Redis stalled past the read
// timeout: it may apply it later) fails and is not tried again, so it is
// never applied twice.
func TestCommitterRetriesOnlyWhatRedisDidNotApply(t *testing.T) {
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond})
	defer rdb.Close()
	ctx := context.Background()
	c := NewCommitter(rdb, CommitterConfig{Timeout: 3 * time.Second})
	defer c.Close()
	if err := c.Commit(ctx, "s", push("l", "before")); err != nil {
		t.Fatal(err)
	}

	srv.Kill(t)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Commit(ctx, "s", push("l", "during the restart")) }()
	time.Sleep(500 * time.Millisecond)
	srv.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("commit across a 500 ms restart: %v", err)
	}
	t.Logf("committed %v after Redis went down", time.Since(start).Round(time.Millisecond))
	if got, err := rdb.LRange(ctx, "l", 0, -1).Result(); err != nil || fmt.Sprint(got) != "[during the restart]" {
		t.Fatalf("list = %v, %v; want the late batch once (the restart kept nothing before it)", got, err)
	}

	srv.Pause(t)
	err := c.Commit(ctx, "s", push("l", "answer lost"))
	srv.Resume(t)
	if err == nil {
		t.Fatal("commit whose answer was lost succeeded")
	}
	time.Sleep(300 * time.Millisecond)
	got, err := rdb.LRange(ctx, "l", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(fmt.Sprint(got), "answer lost"); n > 1 {
		t.Fatalf("list = %v: a batch whose answer was lost was applied %d times", got, n)
	}
}

// replyDropper is a TCP proxy to Redis that, while armed, closes a client
// connection as soon as Redis answers on it, before the answer reaches the
// client: the commands ran, their answer is lost, the connection is closed
// by "Redis".
type replyDropper struct {
	ln    net.Listener
	to    string
	armed atomic.Bool
}

func newReplyDropper(t *testing.T, to string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &replyDropper{ln: ln, to: to}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return d
}

func (d *replyDropper) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", d.to)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(s, c) }()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if err != nil {
			return
		}
		if d.armed.CompareAndSwap(true, false) {
			return // the answer is dropped and the connection closed
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// A batch whose connection Redis closed is committed exactly once: when
// Redis ran it and only the answer was lost, its marker says so and it is
// not run again; when Redis never ran it (killed with the batch unread), it
// is run once Redis is back.
func TestCommitterConnectionClosedCommitsOnce(t *testing.T) {
	ctx := context.Background()
	srv := testredis.StartAOF(t)
	d := newReplyDropper(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: d.ln.Addr().String(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	c := NewCommitter(rdb, CommitterConfig{Node: "gw-test", Timeout: 5 * time.Second})
	defer c.Close()

	d.armed.Store(true)
	if err := c.Commit(ctx, "s", push("l", "answer lost")); err != nil {
		t.Fatalf("commit whose answer was lost: %v, want it found applied", err)
	}
	if d.armed.Load() {
		t.Fatal("the proxy dropped no answer")
	}

	srv.Pause(t)
	done := make(chan error, 1)
	go func() { done <- c.Commit(ctx, "s", push("l", "never read")) }()
	time.Sleep(200 * time.Millisecond) // written to the stopped Redis's socket
	srv.Kill(t)
	srv.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("commit Redis never read: %v, want it committed after the restart", err)
	}
	got, err := rdb.LRange(ctx, "l", 0, -1).Result()
	if err != nil || fmt.Sprint(got) != "[answer lost never read]" {
		t.Fatalf("list = %q, %v; want each batch once", got, err)
	}
}

// Batches Redis acknowledged and then lost (the marker comes back with an
// older number, as on a promoted replica that lagged, or is gone) are
// reported with the next batch: the sessions whose writes they carried,
// and whether the committer remembered them all.
func TestCommitterReportsLostBatches(t *testing.T) {
	ctx := context.Background()
	rdb := testredis.Start(t).Client(t)
	type report struct {
		sids     []string
		complete bool
	}
	reports := make(chan report, 4)
	keys := NewKeys("lost:", 1)
	c := NewCommitter(rdb, CommitterConfig{Keys: keys, Node: "gw", Shards: 1,
		RolledBack: func(sids []string, complete bool) { reports <- report{sids, complete} }})
	defer c.Close()
	marker := keys.CommitMarker(0, "gw")
	for _, sid := range []string{"a", "b", "c"} {
		if err := c.Commit(ctx, sid, push("lost:l", sid)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-reports:
		t.Fatalf("reported %v with nothing lost", r)
	default:
	}
	// Redis comes back as it was after the first batch.
	if err := rdb.Set(ctx, marker, 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, "d", push("lost:l", "d")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reports:
		if !slices.Equal(r.sids, []string{"b", "c"}) || !r.complete {
			t.Fatalf("reported %v, want b and c, complete", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lost batches not reported")
	}
	// Redis comes back without the marker: every remembered batch may be
	// lost, and maybe more.
	if err := rdb.Del(ctx, marker).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, "e", push("lost:l", "e")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reports:
		if !slices.Equal(r.sids, []string{"a", "b", "c", "d"}) || r.complete {
			t.Fatalf("reported %v, want a to d, not complete", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lost marker not reported")
	}
	if err := c.Commit(ctx, "f", push("lost:l", "f")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reports:
		t.Fatalf("reported %v after the loss was reported", r)
	case <-time.After(100 * time.Millisecond):
	}
	// Check finds a loss without a session's write: batch 6 (f) lost.
	if err := rdb.Set(ctx, marker, 5, 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Check(ctx)
	select {
	case r := <-reports:
		if !slices.Equal(r.sids, []string{"f"}) || !r.complete {
			t.Fatalf("reported %v, want f, complete", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Check did not find the loss")
	}
	c.Check(ctx) // its own empty batches are nobody's
	select {
	case r := <-reports:
		t.Fatalf("reported %v with nothing lost", r)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestAckedRemembers(t *testing.T) {
	var a acked
	for seq := uint64(1); seq <= DefaultCommitRemember+2; seq++ {
		a.add(seq, []*request{{sid: strconv.FormatUint(seq, 10)}})
	}
	if a.first != 3 || len(a.sids) != DefaultCommitRemember {
		t.Fatalf("first %d, %d remembered", a.first, len(a.sids))
	}
	last := strconv.Itoa(DefaultCommitRemember + 2)
	if sids, complete := a.lostAfter(DefaultCommitRemember + 1); !slices.Equal(sids, []string{last}) || !complete {
		t.Errorf("lostAfter(last but one) = %v, %v", sids, complete)
	}
	if sids, complete := a.lostAfter(1); len(sids) != DefaultCommitRemember || complete {
		t.Errorf("lostAfter(1) = %d sessions, %v; want all remembered, not complete", len(sids), complete)
	}
	if sids, complete := a.lostAfter(2); len(sids) != DefaultCommitRemember || !complete {
		t.Errorf("lostAfter(2) = %d sessions, %v; want all remembered, complete", len(sids), complete)
	}
	// Big batches: bounded by session ids too.
	big := make([]*request, DefaultCommitRememberSessions/4)
	for i := range big {
		big[i] = &request{sid: "s"}
	}
	for seq := uint64(DefaultCommitRemember + 3); seq < DefaultCommitRemember+9; seq++ {
		a.add(seq, big)
	}
	if a.n > DefaultCommitRememberSessions || len(a.sids) != 4 || a.first != DefaultCommitRemember+5 {
		t.Errorf("%d session ids in %d batches from %d, want at most %d in 4 from %d",
			a.n, len(a.sids), a.first, DefaultCommitRememberSessions, DefaultCommitRemember+5)
	}
}
