package integration

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/internal/testredis"
)

// wsEcho sends an acked echo event with id n on ws and waits for its ack,
// skipping heartbeats and the echo app's events (its welcome).
func wsEcho(t *testing.T, ws *websocket.Conn, n int) {
	t.Helper()
	id := strconv.Itoa(n)
	writeWS(t, ws, `5:`+id+`+::{"name":"echo","args":["e`+id+`"]}`)
	for {
		m := readWS(t, ws)
		if strings.HasPrefix(m, "5:::") {
			continue
		}
		if m != `6:::`+id+`+["e`+id+`"]` {
			t.Fatalf("echo %d: got %q", n, m)
		}
		return
	}
}

// wsClosedWithin reads ws until it is closed, answering nothing, and fails
// when a frame other than a heartbeat arrives or it is still open after d.
// It returns how long it took.
func wsClosedWithin(t *testing.T, ws *websocket.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = ws.SetReadDeadline(start.Add(d))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("websocket still open %v later", d)
			}
			return time.Since(start)
		}
		if m := string(b); m != "2::" {
			t.Fatalf("frame %q before the close (0:: would end the 0.9 client for good)", m)
		}
		// The client stays alive: it answers heartbeats.
		_ = ws.WriteMessage(websocket.TextMessage, []byte("2::"))
	}
}

// metricAdmin returns the value of a sample of a process's /metrics (0
// when it is absent); the process was started with -admin-addr
// 127.0.0.1:0; line is the sample's name with its labels.
func metricAdmin(t *testing.T, p *proc, line string) float64 {
	t.Helper()
	_, body, _ := get(t, "http://"+p.logged(adminRE)+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, line+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

var orphanLogRE = regexp.MustCompile(`(?m)^.*streaming connections closed: their sessions are gone from Redis.*$`)

// A websocket whose session record vanished (evicted, deleted by hand: its
// gateway's route stream is intact, so no gap tells) is closed within a
// heartbeat interval, with no 0:: (so the 0.9 client reconnects), counted
// and logged once; the gateway and worker go on serving new sessions.
func TestStreamSessionVanished(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a", "-heartbeat-interval", "1s", "-heartbeat-timeout", "3s", "-admin-addr", "127.0.0.1:0")
	c.worker("w", "echo")
	ctx := context.Background()
	var socks []*websocket.Conn
	var sids []string
	for range 3 {
		sid := handshake(t, gw)
		sids = append(sids, sid)
		ws := dialWS(t, gw, sid)
		if m := readWS(t, ws); m != "1::" {
			t.Fatalf("first frame %q", m)
		}
		wsEcho(t, ws, 1)
		socks = append(socks, ws)
	}
	before := c.exists(ctx)
	for range 6 { // 3 s of a live client: it answers heartbeats
		time.Sleep(500 * time.Millisecond)
		for _, ws := range socks {
			writeWS(t, ws, "2::")
		}
	}
	calls := c.exists(ctx) - before
	// 3 streams, 3 intervals: 9 checks expected, give or take a slot.
	info, _ := c.rdb.Info(ctx, "commandstats").Result()
	t.Logf("EXISTS calls for 3 held streams in 3 heartbeat intervals: %d (%s)", calls,
		regexp.MustCompile(`cmdstat_exists:\S+`).FindString(info))
	if calls < 6 || calls > 15 {
		t.Errorf("EXISTS calls %d, want about one per held stream per interval (9)", calls)
	}
	for _, sid := range sids {
		if err := c.rdb.Del(ctx, c.keys.Session(sid)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, ws := range socks {
		took := wsClosedWithin(t, ws, time.Second+sessionGrace+time.Second)
		t.Logf("websocket %d closed %v after its session was deleted", i, took.Round(time.Millisecond))
	}
	if n := metricAdmin(t, gw, "realtime_gateway_streams_orphaned_total"); n != 3 {
		t.Errorf("realtime_gateway_streams_orphaned_total %v, want 3", n)
	}
	if n := len(orphanLogRE.FindAllString(gw.logText(), -1)); n < 1 || n > 2 {
		t.Errorf("%d log lines for 3 closed connections, want one (two if the closes straddled the log interval)", n)
	}
	// A new session works.
	sid := handshake(t, gw)
	ws := dialWS(t, gw, sid)
	if m := readWS(t, ws); m != "1::" {
		t.Fatalf("first frame %q", m)
	}
	wsEcho(t, ws, 1)
}

// sessionGrace is the gateway's sessionGoneGrace.
const sessionGrace = 200 * time.Millisecond

// exists returns how many EXISTS commands Redis has run.
func (c *cluster) exists(ctx context.Context) int {
	c.t.Helper()
	info, err := c.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	m := regexp.MustCompile(`cmdstat_exists:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The official client whose websocket's session vanished (FLUSHALL) is
// reconnected by its own client and talks again.
func TestOfficialClientSessionVanished(t *testing.T) {
	// Parallel: a cluster of its own; it waits on a 10 s run of 4
	// websocket clients.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gw := c.gateway("a", "-heartbeat-interval", "1s", "-heartbeat-timeout", "3s")
	c.worker("w", "echo")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "node", script, "--url", "http://"+gw.addr, "--transport", "websocket",
			"--clients", "4", "--seconds", "10", "--expect", "reconnected").CombinedOutput()
		done <- result{string(out), err}
	}()
	time.Sleep(3 * time.Second)
	if err := c.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("steady.js: %v\n%s", r.err, r.out)
	}
	t.Logf("%s", r.out)
}

// redisFault is a way for Redis to stop taking writes, and its end.
type redisFault struct {
	name       string
	begin, end func(t *testing.T, c *cluster)
}

var writeFaults = []redisFault{
	{"paused", // SIGSTOP: longer than the gateway's commit timeouts
		func(t *testing.T, c *cluster) { c.redis.Pause(t) },
		func(t *testing.T, c *cluster) { c.redis.Resume(t) }},
	{"oom", // maxmemory under what is used, noeviction: every write refused
		func(t *testing.T, c *cluster) { c.setMaxMemory(t, "1") },
		func(t *testing.T, c *cluster) { c.setMaxMemory(t, "0") }},
}

func (c *cluster) setMaxMemory(t *testing.T, v string) {
	t.Helper()
	ctx := context.Background()
	if err := c.rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.rdb.ConfigSet(ctx, "maxmemory", v).Err(); err != nil {
		t.Fatal(err)
	}
}

// A websocket whose signal could not be committed (Redis paused past the
// commit timeout, or refusing writes) is closed at once, without 0::,
// counted and logged; after Redis is back a new session talks.
func TestWebSocketCommitFailureEndsSession(t *testing.T) {
	// Parallel: each fault has a cluster of its own; it waits on the
	// gateway's Redis timeouts.
	t.Parallel()
	for _, f := range writeFaults {
		t.Run(f.name, func(t *testing.T) {
			c := newCluster(t)
			gw := c.gateway("a", "-heartbeat-interval", "1s", "-heartbeat-timeout", "3s", "-admin-addr", "127.0.0.1:0")
			c.worker("w", "echo")
			ws := dialWS(t, gw, handshake(t, gw))
			if m := readWS(t, ws); m != "1::" {
				t.Fatalf("first frame %q", m)
			}
			wsEcho(t, ws, 1)
			f.begin(t, c)
			writeWS(t, ws, `5:2+::{"name":"echo","args":["lost?"]}`)
			// The gateway's Redis read timeout (gateway.RedisWait, 4 s) for
			// a pause; at once for a refusal.
			took := wsClosedWithin(t, ws, 8*time.Second)
			t.Logf("websocket closed %v after its signal", took.Round(time.Millisecond))
			f.end(t, c)
			if n := metricAdmin(t, gw, "realtime_gateway_commit_failures_total"); n != 1 {
				t.Errorf("realtime_gateway_commit_failures_total %v, want 1", n)
			}
			if !strings.Contains(gw.logText(), "a signal they sent was not committed to Redis") {
				t.Error("no log line for the session ended")
			}
			ws = dialWS(t, gw, handshake(t, gw))
			if m := readWS(t, ws); m != "1::" {
				t.Fatalf("first frame %q", m)
			}
			wsEcho(t, ws, 1)
		})
	}
}

// Official clients sending through a Redis that stops taking writes are
// disconnected (not left waiting for acks of events that were dropped) and
// reconnect by themselves once Redis is back; a client whose signal was
// committed late (after the pause) keeps its session and loses nothing.
func TestOfficialClientCommitFailure(t *testing.T) {
	script := nodeScript(t, "steady.js")
	for _, f := range writeFaults {
		t.Run(f.name, func(t *testing.T) {
			// Parallel: each fault has a cluster of its own, and mostly
			// waits on its 16 s run of 4 websocket clients.
			t.Parallel()
			c := newCluster(t)
			gw := c.gateway("a", "-heartbeat-interval", "1s", "-heartbeat-timeout", "3s")
			c.worker("w", "echo")
			done := make(chan nodeResult, 1)
			go runNodeAsync(done, script, "--url", "http://"+gw.addr, "--transport", "websocket",
				"--clients", "4", "--seconds", "16", "--expect", "no-silent-loss")
			time.Sleep(3 * time.Second)
			f.begin(t, c)
			time.Sleep(6 * time.Second)
			f.end(t, c)
			r := <-done
			if r.err != nil {
				t.Fatalf("steady.js: %v\n%s", r.err, r.out)
			}
			t.Logf("%s", r.out)
		})
	}
}

type nodeResult struct {
	out string
	err error
}

// runNodeAsync runs a Node program (at most a minute) and sends its output.
func runNodeAsync(done chan<- nodeResult, script string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "node", append([]string{script}, args...)...).CombinedOutput()
	done <- nodeResult{string(out), err}
}

// /readyz is false while Redis refuses the gateway's writes (out of memory
// with noeviction, a read-only replica), although reads still work, and
// true again after; each change is counted and logged once.
func TestReadinessWhileWritesFail(t *testing.T) {
	faults := []redisFault{writeFaults[1], {"read-only",
		func(t *testing.T, c *cluster) {
			primary := testredis.Start(t)
			host, port, _ := strings.Cut(primary.Addr, ":")
			if err := c.rdb.ReplicaOf(context.Background(), host, port).Err(); err != nil {
				t.Fatal(err)
			}
		},
		func(t *testing.T, c *cluster) {
			if err := c.rdb.ReplicaOf(context.Background(), "NO", "ONE").Err(); err != nil {
				t.Fatal(err)
			}
		}}}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			c := newCluster(t)
			gw := c.gateway("a", "-admin-addr", "127.0.0.1:0")
			admin := "http://" + gw.logged(adminRE)
			readyz := func() (int, string) {
				code, body, _ := get(t, admin+"/readyz")
				return code, body
			}
			if code, body := readyz(); code != 200 {
				t.Fatalf("readyz before: %d %q", code, body)
			}
			f.begin(t, c)
			for i := range 4 {
				code, body := readyz()
				if code != http.StatusServiceUnavailable {
					t.Fatalf("readyz %d during the fault: %d %q", i, code, body)
				}
				if i == 0 {
					t.Logf("readyz: %d %s", code, strings.TrimSpace(body))
				}
				time.Sleep(200 * time.Millisecond)
			}
			f.end(t, c)
			deadline := time.Now().Add(10 * time.Second)
			for {
				code, body := readyz()
				if code == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("readyz after the fault: %d %q", code, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
			readyz()
			for _, m := range []struct {
				line string
				want float64
			}{
				{`realtime_gateway_readiness_changes_total{to="unready"}`, 1},
				{`realtime_gateway_readiness_changes_total{to="ready"}`, 1},
				{`realtime_gateway_ready`, 1},
			} {
				if got := metricAdmin(t, gw, m.line); got != m.want {
					t.Errorf("%s %v, want %v", m.line, got, m.want)
				}
			}
			logs := gw.logText()
			if n := strings.Count(logs, `msg="not ready"`); n != 1 {
				t.Errorf("%d 'not ready' log lines, want 1", n)
			}
			if n := strings.Count(logs, `msg="ready again"`); n != 1 {
				t.Errorf("%d 'ready again' log lines, want 1", n)
			}
		})
	}
}

// Polling POSTs ride out a 2 s Redis pause (shorter than the 3 s bound a
// POST waits for Redis): answered 200 after it, and the official
// xhr-polling client keeps its session and loses no ack.
func TestPollingRidesOutRedisPause(t *testing.T) {
	// Parallel: a cluster of its own; it waits on a 10 s run of 4
	// xhr-polling clients across a 2 s pause.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gw := c.gateway("a")
	c.worker("w", "echo")
	sid := handshake(t, gw)
	if code, body, _ := get(t, gw.url("/socket.io/1/xhr-polling/"+sid+"?t=1")); code != 200 || body != "1::" {
		t.Fatalf("first poll: %d %q", code, body)
	}
	done := make(chan nodeResult, 1)
	go runNodeAsync(done, script, "--url", "http://"+gw.addr, "--transport", "xhr-polling",
		"--clients", "4", "--seconds", "10", "--expect", "same-session")
	time.Sleep(3 * time.Second)
	c.redis.Pause(t)
	posted := make(chan string, 1)
	go func() {
		resp, err := client.Post(gw.url("/socket.io/1/xhr-polling/"+sid+"?t=2"), "text/plain",
			strings.NewReader(`5:1+::{"name":"echo","args":["p"]}`))
		if err != nil {
			posted <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		posted <- strconv.Itoa(resp.StatusCode) + " " + string(b)
	}()
	time.Sleep(2 * time.Second)
	c.redis.Resume(t)
	if got := <-posted; got != "200 1" {
		t.Errorf("POST during the pause: %s, want 200 1", got)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("steady.js: %v\n%s", r.err, r.out)
	}
	t.Logf("%s", lastLine(r.out))
}
