package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pollAnswer is the answer to a poll sent in the background.
type pollAnswer struct {
	status int
	body   string
	err    error
	at     time.Time
}

// parkPoll sends a polling GET for sid with cache-buster ts in the
// background, waits until gw counts it parked (gw has an admin address),
// and returns where its answer comes.
func parkPoll(t *testing.T, gw *proc, sid, ts string, parkedBefore int) <-chan pollAnswer {
	t.Helper()
	ch := make(chan pollAnswer, 1)
	go func() {
		resp, err := client.Get(gw.url("/socket.io/1/xhr-polling/" + sid + "?t=" + ts))
		if err != nil {
			ch <- pollAnswer{err: err, at: time.Now()}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- pollAnswer{status: resp.StatusCode, body: string(b), err: err, at: time.Now()}
	}()
	waitUntil(t, "the poll parked", 10*time.Second, func() error {
		if n := metricAdmin(t, gw, `realtime_gateway_connections{transport="xhr-polling"}`); int(n) <= parkedBefore {
			return fmt.Errorf("%v polls parked", n)
		}
		return nil
	})
	return ch
}

// openPolling handshakes on gw, takes the session's first poll (1::) and
// the echo app's welcome event, so that its next poll parks.
func openPolling(t *testing.T, gw *proc) string {
	t.Helper()
	sid := handshake(t, gw)
	if code, body, _ := get(t, gw.url("/socket.io/1/xhr-polling/"+sid+"?t=1")); code != 200 || body != "1::" {
		t.Fatalf("first poll: %d %q", code, body)
	}
	waitPollFor(t, gw, sid, `"name":"welcome"`)
	return sid
}

var pollOrphanLogRE = regexp.MustCompile(`(?m)^.*parked poll answered 7:::1\+0 at once: its session is gone from Redis.*found_by=(\w+).*$`)

// A POST that finds its session gone is answered 7:::1+0, which the 0.9
// client ignores; the poll the client has parked on the same gateway is
// answered 7:::1+0 at once too (the client handshakes again), not after
// the polling duration. Only the session's record vanishes (as a key
// evicted; a FLUSHALL also loses the gateway's route stream, a gap that
// wakes every poll parked here), and the heartbeat interval is the
// default 25 s, so neither the route stream nor the periodic check of
// parked polls can be what answers it. Counted in
// polls_orphaned_total{found_by="post"} and logged.
func TestParkedPollAnsweredWhenPostFindsSessionGone(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a", "-admin-addr", "127.0.0.1:0")
	c.worker("w", "echo")
	sid := openPolling(t, gw)
	poll := parkPoll(t, gw, sid, "p", 0)
	if err := c.rdb.Del(context.Background(), c.keys.Session(sid)).Err(); err != nil {
		t.Fatal(err)
	}
	posted := time.Now()
	code, body, _ := post(t, gw.url("/socket.io/1/xhr-polling/"+sid+"?t=3"), "text/plain", `5:1+::{"name":"echo","args":["void"]}`)
	if code != 200 || body != "7:::1+0" {
		t.Fatalf("POST to the vanished session: %d %q, want 200 7:::1+0", code, body)
	}
	select {
	case a := <-poll:
		if a.err != nil || a.status != 200 || a.body != "7:::1+0" {
			t.Fatalf("parked poll: %d %q %v, want 200 7:::1+0", a.status, a.body, a.err)
		}
		t.Logf("parked poll answered %v after the POST", a.at.Sub(posted).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatal("the parked poll was not answered within 3s of the POST that found its session gone")
	}
	checkOneOrphanedPoll(t, gw, "post")
	// A new session talks.
	sid = openPolling(t, gw)
	if code, body, _ := post(t, gw.url("/socket.io/1/xhr-polling/"+sid+"?t=p"), "text/plain", `5:1+::{"name":"echo","args":["again"]}`); code != 200 || body != "1" {
		t.Fatalf("POST on the new session: %d %q", code, body)
	}
	waitPollFor(t, gw, sid, `6:::1+["again"]`)
}

// checkOneOrphanedPoll checks that gw answered one parked poll because its
// session was gone, found by (post or check): counted once under that
// found_by and never under the other, and logged once.
func checkOneOrphanedPoll(t *testing.T, gw *proc, by string) {
	t.Helper()
	for _, label := range []string{"post", "check"} {
		want := 0.0
		if label == by {
			want = 1
		}
		if n := metricAdmin(t, gw, `realtime_gateway_polls_orphaned_total{found_by="`+label+`"}`); n != want {
			t.Errorf(`polls_orphaned_total{found_by=%q} %v, want %v`, label, n, want)
		}
	}
	if m := pollOrphanLogRE.FindAllStringSubmatch(gw.logText(), -1); len(m) != 1 || m[0][1] != by {
		t.Errorf("log lines %q, want one with found_by=%s", m, by)
	}
}

// waitPollFor polls sid until an answer holds want (10 s at most).
func waitPollFor(t *testing.T, gw *proc, sid, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		code, body, _ := get(t, gw.url(fmt.Sprintf("/socket.io/1/xhr-polling/%s?t=w%d", sid, i)))
		if code != 200 {
			t.Fatalf("poll: %d %q", code, body)
		}
		if strings.Contains(body, want) {
			return
		}
	}
	t.Fatalf("no poll answer with %q within 10s", want)
}

// A parked poll whose session record disappeared (no POST comes) is
// answered 7:::1+0 within one heartbeat interval (1 s here) plus the
// 200 ms grace, not after the polling duration (20 s); a poll parked for a
// live session is left parked. Counted in
// polls_orphaned_total{found_by="check"} and logged.
func TestParkedPollAnsweredWhenSessionVanishes(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a", "-admin-addr", "127.0.0.1:0", "-heartbeat-interval", "1s", "-heartbeat-timeout", "3s")
	c.worker("w", "echo")
	ctx := context.Background()
	gone, live := openPolling(t, gw), openPolling(t, gw)
	gonePoll := parkPoll(t, gw, gone, "p", 0)
	livePoll := parkPoll(t, gw, live, "p", 1)
	// Only the first session's record vanishes, as in a FLUSHALL.
	if err := c.rdb.Del(ctx, c.keys.Session(gone)).Err(); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	select {
	case a := <-gonePoll:
		took := a.at.Sub(deleted)
		if a.err != nil || a.status != 200 || a.body != "7:::1+0" {
			t.Fatalf("parked poll of the vanished session: %d %q %v, want 200 7:::1+0", a.status, a.body, a.err)
		}
		t.Logf("parked poll answered %v after its session record vanished", took.Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatal("the parked poll of a vanished session was not answered within 3s (heartbeat interval 1s)")
	}
	// Two more checks of every slot: the live session's poll stays parked.
	select {
	case a := <-livePoll:
		t.Fatalf("the live session's parked poll was answered: %d %q %v", a.status, a.body, a.err)
	case <-time.After(2 * time.Second):
	}
	checkOneOrphanedPoll(t, gw, "check")
	// The live session talks: its echo's ack wakes its parked poll.
	if code, body, _ := post(t, gw.url("/socket.io/1/xhr-polling/"+live+"?t=3"), "text/plain", `5:1+::{"name":"echo","args":["live"]}`); code != 200 || body != "1" {
		t.Fatalf("POST on the live session: %d %q", code, body)
	}
	select {
	case a := <-livePoll:
		if a.err != nil || a.status != 200 || !strings.Contains(a.body, `6:::1+["live"]`) {
			t.Fatalf("the live session's poll: %d %q %v, want its ack", a.status, a.body, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the live session's poll was not woken by its ack")
	}
}

// steadyClient is the JSON line steady.js prints for a client.
type steadyClient struct {
	I          int      `json:"i"`
	SIDs       []string `json:"sids"`
	ConnectAt  []int64  `json:"connectAt"`  // unix ms of each connect
	FirstAckAt []int64  `json:"firstAckAt"` // unix ms of the first ack on each session (0: none)
	AckedLast  int      `json:"ackedLast"`
}

func steadyClients(t *testing.T, out string) []steadyClient {
	t.Helper()
	var cs []steadyClient
	for _, l := range strings.Split(out, "\n") {
		if j, ok := strings.CutPrefix(l, "# "); ok {
			var c steadyClient
			if err := json.Unmarshal([]byte(j), &c); err != nil {
				t.Fatalf("steady.js line %q: %v", l, err)
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// Official xhr-polling clients whose sessions vanish are reconnected by
// their own client (a new session) and get acked echoes again within a few
// seconds, not after the polling duration (20 s): a client's POST finds
// its session gone, or the check of parked polls does, and its parked poll
// is answered 7:::1+0.
//
//   - flushall: FLUSHALL also loses the gateway's route stream, a gap that
//     wakes every poll parked there; which path answers a poll first is a
//     race.
//   - evicted: only the session records go (as keys evicted under
//     maxmemory): nothing but a POST or the check can tell the polls.
func TestOfficialPollingClientSessionVanished(t *testing.T) {
	script := nodeScript(t, "steady.js")
	for _, tc := range []struct {
		name   string
		vanish func(t *testing.T, c *cluster)
	}{
		{"flushall", func(t *testing.T, c *cluster) {
			if err := c.rdb.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"evicted", func(t *testing.T, c *cluster) {
			ctx := context.Background()
			// Every connected session's hash (each is in its partition's
			// default namespace set).
			var keys []string
			for sid := range c.connected(ctx) {
				keys = append(keys, c.keys.Session(sid))
			}
			if len(keys) == 0 {
				t.Fatal("no session connected")
			}
			if err := c.rdb.Del(ctx, keys...).Err(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Parallel: each case has a cluster of its own, and mostly
			// waits on its 12 s run of 4 xhr-polling clients.
			t.Parallel()
			c := newCluster(t)
			gw := c.gateway("a", "-heartbeat-interval", "1s", "-heartbeat-timeout", "3s", "-admin-addr", "127.0.0.1:0")
			c.worker("w", "echo")
			done := make(chan nodeResult, 1)
			go runNodeAsync(done, script, "--url", "http://"+gw.addr, "--transport", "xhr-polling",
				"--clients", "4", "--seconds", "12", "--expect", "reconnected")
			time.Sleep(4 * time.Second)
			tc.vanish(t, c)
			vanished := time.Now().UnixMilli()
			r := <-done
			if r.err != nil {
				t.Fatalf("steady.js: %v\n%s", r.err, r.out)
			}
			t.Logf("%s", lastLine(r.out))
			cs := steadyClients(t, r.out)
			if len(cs) != 4 {
				t.Fatalf("%d client lines, want 4:\n%s", len(cs), r.out)
			}
			var worst time.Duration
			for _, cl := range cs {
				last := cl.FirstAckAt[len(cl.FirstAckAt)-1]
				if len(cl.SIDs) < 2 || last == 0 || last < vanished {
					t.Fatalf("client %d: sessions %v, first acks %v: no ack on a new session after its session vanished", cl.I, cl.SIDs, cl.FirstAckAt)
				}
				took := time.Duration(last-vanished) * time.Millisecond
				t.Logf("client %d: first ack on its new session %v after its session vanished", cl.I, took)
				worst = max(worst, took)
			}
			// The check's bound (a heartbeat interval plus 200 ms), the
			// client's reconnection delay (200 ms), a handshake and an echo,
			// on a loaded machine: a few seconds, against 20 s (the polling
			// duration) when nothing answers the parked polls.
			if worst > 5*time.Second {
				t.Errorf("a client talked again only %v after its session vanished, want within 5s", worst)
			}
			t.Logf("parked polls answered for their vanished sessions: %v found by a POST, %v by the check",
				metricAdmin(t, gw, `realtime_gateway_polls_orphaned_total{found_by="post"}`),
				metricAdmin(t, gw, `realtime_gateway_polls_orphaned_total{found_by="check"}`))
		})
	}
}
