package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// Faults of Redis under traffic, on the route streams that carry what
// workers commit back to gateways (docs/redis.md, "Routing back"). Each test
// runs official socket.io-client 0.9.16 clients in a closed loop of acked
// echoes (test/node/steady.js) while it breaks Redis.

// steady starts steady.js against url and returns its result channel.
func steady(t *testing.T, url, transport, expect string, clients, seconds int) chan nodeResult {
	t.Helper()
	done := make(chan nodeResult, 1)
	go runNodeAsync(done, nodeScript(t, "steady.js"), "--url", url, "--transport", transport,
		"--clients", strconv.Itoa(clients), "--seconds", strconv.Itoa(seconds), "--expect", expect)
	return done
}

// passed waits for a steady.js run and fails the test unless it passed.
func passed(t *testing.T, name string, done chan nodeResult) {
	t.Helper()
	r := <-done
	if r.err != nil {
		t.Errorf("%s: steady.js: %v\n%s", name, r.err, r.out)
		return
	}
	t.Logf("%s: %s", name, lastLine(r.out))
}

// gaps returns a gateway's realtime_gateway_route_gaps_total, all reasons.
func gaps(t *testing.T, gws ...*proc) float64 {
	t.Helper()
	var n float64
	for _, g := range gws {
		for _, r := range []bus.GapReason{bus.GapTrimmed, bus.GapLost, bus.GapRolledBack} {
			n += metricAdmin(t, g, `realtime_gateway_route_gaps_total{reason="`+string(r)+`"}`)
		}
	}
	return n
}

// Every client connection of Redis killed twice (CLIENT KILL TYPE normal,
// then TYPE pubsub: the gateways' route stream readers, their committers,
// the workers' consumers and reply subscriptions) under websocket traffic
// to two gateways: no client notices (same session, no ack lost,
// duplicated or reordered), and no gateway reports a gap.
func TestRouteStreamSurvivesClientKills(t *testing.T) {
	// Parallel: a cluster of its own (CLIENT KILL reaches only its own
	// Redis); it waits on a 10 s run of 8 clients.
	t.Parallel()
	c := newCluster(t)
	a := c.gateway("a", "-admin-addr", "127.0.0.1:0")
	b := c.gateway("b", "-admin-addr", "127.0.0.1:0")
	c.worker("w", "echo")
	runA := steady(t, "http://"+a.addr, "websocket", "same-session", 4, 10)
	runB := steady(t, "http://"+b.addr, "websocket", "same-session", 4, 10)
	ctx := context.Background()
	for i, typ := range []string{"normal", "pubsub"} {
		time.Sleep(3 * time.Second)
		n, err := c.rdb.ClientKillByFilter(ctx, "TYPE", typ, "SKIPME", "yes").Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: CLIENT KILL TYPE %s closed %d connections", i+1, typ, n)
	}
	passed(t, "gateway a", runA)
	passed(t, "gateway b", runB)
	if n := gaps(t, a, b); n != 0 {
		t.Errorf("%v route gaps after connection kills that lost nothing", n)
	}
}

// Redis stopped (SIGSTOP) for 5 s under websocket and xhr-polling traffic:
// what workers committed before and during the stall reaches the gateway
// after it (no gap), and no client is left waiting in silence: each either
// kept its session and lost no ack, or (its signal could not be committed
// within the gateway's bounds) was reconnected by its own client and talks.
func TestRedisPauseUnderTraffic(t *testing.T) {
	// Parallel: a cluster of its own; it waits on a 14 s run of 8
	// clients across a 5 s pause.
	t.Parallel()
	c := newCluster(t)
	gw := c.gateway("a", "-admin-addr", "127.0.0.1:0")
	c.worker("w", "echo")
	ws := steady(t, "http://"+gw.addr, "websocket", "no-silent-loss", 4, 14)
	xhr := steady(t, "http://"+gw.addr, "xhr-polling", "no-silent-loss", 4, 14)
	time.Sleep(3 * time.Second)
	c.redis.Pause(t)
	time.Sleep(5 * time.Second)
	c.redis.Resume(t)
	passed(t, "websocket", ws)
	passed(t, "xhr-polling", xhr)
	if n := gaps(t, gw); n != 0 {
		t.Errorf("%v route gaps after a pause that lost nothing", n)
	}
}

// Redis killed (SIGKILL) and restarted with its data (AOF, fsync always)
// under websocket and xhr-polling traffic through the shipped haproxy
// config to two gateways: no client notices (same session, nothing lost,
// duplicated or reordered), and no gateway reports a gap.
func TestRedisAOFRestartUnderTraffic(t *testing.T) {
	// Parallel: a Redis (AOF), gateways and haproxy of its own; it waits
	// on a 12 s run of 8 clients.
	t.Parallel()
	srv := testredis.StartAOF(t)
	c := &cluster{t: t, redis: srv, rdb: srv.Client(t), keys: bus.NewKeys("", 0)}
	gws, admins := c.lbGateways(2)
	c.worker("w", "echo")
	lb := c.haproxy(gws, admins)
	ws := steady(t, lb, "websocket", "same-session", 4, 12)
	xhr := steady(t, lb, "xhr-polling", "same-session", 4, 12)
	time.Sleep(4 * time.Second)
	down := time.Now()
	srv.Kill(t)
	srv.Restart(t)
	t.Logf("Redis was down %v (kill -9, restart from the AOF)", time.Since(down).Round(time.Millisecond))
	passed(t, "websocket", ws)
	passed(t, "xhr-polling", xhr)
	if n := gaps(t, gws...); n != 0 {
		t.Errorf("%v route gaps after an AOF restart that lost nothing", n)
	}
}

// Redis stopped (SIGSTOP) behind the shipped haproxy config with two
// gateways: both turn unready (their /readyz probes time out) and haproxy
// takes them out of the rotation, but it fails open (backend gateways_up)
// instead of answering 503 itself, which would make a 0.9 polling client
// drop its session and a jsonp-polling client lose its POST unseen. A POST
// sent then waits for Redis (-redis-wait, 4 s), is answered 200 once Redis
// is back, and the session carries on: its echo arrives.
func TestRedisPauseBehindLoadBalancer(t *testing.T) {
	// Parallel: a cluster and haproxy of its own; it waits on the pause
	// and haproxy's health checks.
	t.Parallel()
	c := newCluster(t)
	gws, admins := c.lbGateways(2)
	c.worker("w", "echo")
	lb := c.haproxy(gws, admins)
	sid := handshakeAt(t, lb)
	pollAt := func(tb int) string { return fmt.Sprintf("%s/socket.io/1/xhr-polling/%s?t=%d", lb, sid, tb) }
	if code, body, _ := get(t, pollAt(2)); code != 200 || body != "1::" {
		t.Fatalf("first poll: %d %q", code, body)
	}

	c.redis.Pause(t)
	waitUntil(t, "both gateways unready", 10*time.Second, func() error {
		for _, g := range gws {
			if n := metricAdmin(t, g, `realtime_gateway_readiness_changes_total{to="unready"}`); n < 1 {
				return fmt.Errorf("gateway %s still ready", g.name)
			}
		}
		return nil
	})
	time.Sleep(2500 * time.Millisecond) // haproxy's checks (1 s apart, fall 2) find them unready
	if code, body, _ := get(t, lb+"/not-socket-io"); code == http.StatusServiceUnavailable {
		t.Fatalf("with no gateway ready, the balancer answered itself: %d %q", code, body)
	}
	type answer struct {
		code int
		body string
		err  error
	}
	posted := make(chan answer, 1)
	go func() {
		resp, err := http.Post(pollAt(3), "text/plain", strings.NewReader(`5:1+::{"name":"echo","args":["during the stall"]}`))
		if err != nil {
			posted <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		posted <- answer{resp.StatusCode, string(b), err}
	}()
	time.Sleep(500 * time.Millisecond)
	c.redis.Resume(t)
	if a := <-posted; a.err != nil || a.code != 200 || a.body != "1" {
		t.Fatalf("POST during the stall: %d %q %v", a.code, a.body, a.err)
	}
	waitUntil(t, "the echo's ack", 10*time.Second, func() error {
		code, body, _ := get(t, pollAt(4+int(time.Now().UnixNano()%1e6)))
		if code != 200 || !strings.Contains(body, `6:::1+["during the stall"]`) {
			return fmt.Errorf("poll: %d %q", code, body)
		}
		return nil
	})
}

var routeGapLogRE = regexp.MustCompile(`(?m)^.*route messages may have been missed.*reason=(\S+).*$`)

// Redis restarted empty (no persistence) under websocket and xhr-polling
// traffic: each gateway finds its route stream gone (stream_lost), ends the
// streams it holds, and recreates the stream; workers recreate their
// consumer groups and leases; every client is reconnected by its own client
// and talks again well within 15 s; no process exits.
func TestRedisRestartedEmptyUnderTraffic(t *testing.T) {
	// Parallel: a cluster and haproxy of its own; it waits on a 16 s
	// run of 8 clients.
	t.Parallel()
	c := newCluster(t)
	gws, admins := c.lbGateways(2)
	w := c.worker("w", "echo")
	lb := c.haproxy(gws, admins)
	ws := steady(t, lb, "websocket", "reconnected", 4, 16)
	xhr := steady(t, lb, "xhr-polling", "reconnected", 4, 16)
	time.Sleep(3 * time.Second)
	c.redis.Kill(t)
	c.redis.Restart(t)
	passed(t, "websocket", ws)
	passed(t, "xhr-polling", xhr)
	for _, p := range append(gws, w) {
		select {
		case <-p.done:
			t.Errorf("%s exited:\n%s", p.name, p.logText())
		default:
		}
	}
	// Each of a gateway's route streams (one per partition) was lost once.
	parts := c.keys.Partitions()
	for _, g := range gws {
		if n := metricAdmin(t, g, `realtime_gateway_route_gaps_total{reason="stream_lost"}`); n != float64(parts) {
			t.Errorf("gateway %s: %v stream_lost gaps, want %d", g.name, n, parts)
		}
		m := routeGapLogRE.FindAllStringSubmatch(g.logText(), -1)
		if len(m) != parts || slices.ContainsFunc(m, func(l []string) bool { return l[1] != string(bus.GapLost) }) {
			t.Errorf("gateway %s: gap log lines %q, want %d stream_lost, one per partition", g.name, m, parts)
		}
	}
}

// FLUSHALL under a held websocket: its gateway finds its route streams gone
// within about a second, closes the websocket (no 0::, so the 0.9 client
// reconnects), counts and logs the gap of each stream once, and serves new
// sessions.
func TestFlushAllEndsHeldStreams(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a", "-admin-addr", "127.0.0.1:0")
	c.worker("w", "echo")
	sid := handshake(t, gw)
	ws := dialWS(t, gw, sid)
	if m := readWS(t, ws); m != "1::" {
		t.Fatalf("first frame %q", m)
	}
	wsEcho(t, ws, 1)
	if err := c.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	took := wsClosedWithin(t, ws, 3*time.Second)
	t.Logf("websocket closed %v after FLUSHALL", took.Round(time.Millisecond))
	parts := c.keys.Partitions()
	waitUntil(t, "every route stream's gap found", 5*time.Second, func() error {
		if n := metricAdmin(t, gw, `realtime_gateway_route_gaps_total{reason="stream_lost"}`); n < float64(parts) {
			return fmt.Errorf("%v gaps", n)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if n := metricAdmin(t, gw, `realtime_gateway_route_gaps_total{reason="stream_lost"}`); n != float64(parts) {
		t.Errorf("stream_lost gaps %v, want %d (one per partition)", n, parts)
	}
	if n := metricAdmin(t, gw, `realtime_gateway_disconnects_total{reason="delivery_gap"}`); n != 1 {
		t.Errorf("delivery_gap disconnects %v, want 1", n)
	}
	if m := routeGapLogRE.FindAllString(gw.logText(), -1); len(m) != parts {
		t.Errorf("gap log lines %q, want one per partition", m)
	}
	sid = handshake(t, gw)
	ws = dialWS(t, gw, sid)
	if m := readWS(t, ws); m != "1::" {
		t.Fatalf("first frame after the flush %q", m)
	}
	wsEcho(t, ws, 2)
}

// A client that never reads while it is sent large messages is cut off by
// its own gateway (its send queue overflows: reason overflow), and nothing
// else: the gateway keeps reading its route stream at its own pace (no
// Redis output buffer grows for it), so ten official clients on the same
// gateway lose, duplicate and reorder nothing, and keep their sessions.
func TestSlowClientCannotHurtOthers(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a", "-admin-addr", "127.0.0.1:0", "-send-queue", "64")
	c.worker("w", "echo")
	bystanders := steady(t, "http://"+gw.addr, "websocket", "same-session", 10, 8)
	time.Sleep(2 * time.Second)
	sid := handshake(t, gw)
	slow := dialWS(t, gw, sid)
	if m := readWS(t, slow); m != "1::" {
		t.Fatalf("first frame %q", m)
	}
	big := strings.Repeat("x", 60<<10)
	sent := 0
	// 300 x 60 KiB: past the socket buffers and the 64-packet send queue.
	for deadline := time.Now().Add(4 * time.Second); sent < 300 && time.Now().Before(deadline); sent++ {
		_ = slow.SetWriteDeadline(time.Now().Add(time.Second))
		msg := `5:` + strconv.Itoa(sent+1) + `+::{"name":"echo","args":["` + big + `"]}`
		if err := slow.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			break // cut off
		}
	}
	t.Logf("the slow client sent %d echoes of 60 KiB, reading none", sent)
	passed(t, "bystanders", bystanders)
	waitUntil(t, "the slow client cut off", 10*time.Second, func() error {
		if n := metricAdmin(t, gw, `realtime_gateway_disconnects_total{reason="overflow"}`); n != 1 {
			return fmt.Errorf("overflow disconnects %v", n)
		}
		return nil
	})
	if n := gaps(t, gw); n != 0 {
		t.Errorf("%v route gaps", n)
	}
}

// rssKiB returns a process's resident set size.
func rssKiB(t *testing.T, p *proc) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Redis unreachable for 30 s (killed, then restarted with its data) under
// websocket traffic: /readyz is false and /healthz true throughout; a new
// handshake is held (-handshake-hold, 5 s) then refused 503 with a clear
// body; held websockets whose packets cannot be committed within the
// commit bound (5 s) are closed without 0:: (no packet is dropped quietly),
// the others stay open; the gateway's memory stays bounded; no process
// exits; once Redis is back every client talks again.
func TestRedisDown30s(t *testing.T) {
	// Parallel: a Redis (AOF) and gateway of its own; it spends 30 s
	// with Redis down and 4 websocket clients mostly waiting on it.
	t.Parallel()
	srv := testredis.StartAOF(t)
	c := &cluster{t: t, redis: srv, rdb: srv.Client(t), keys: bus.NewKeys("", 0)}
	gw := c.gateway("a", "-admin-addr", "127.0.0.1:0")
	w := c.worker("w", "echo")
	admin := "http://" + gw.logged(adminRE)
	run := steady(t, "http://"+gw.addr, "websocket", "no-silent-loss", 4, 48)
	time.Sleep(3 * time.Second)
	rssBefore := rssKiB(t, gw)
	srv.Kill(t)
	down := time.Now()
	time.Sleep(3 * time.Second)
	if code, body, _ := get(t, admin+"/readyz"); code != 503 {
		t.Errorf("readyz with Redis down: %d %q", code, body)
	}
	start := time.Now()
	code, body, _ := get(t, gw.url("/socket.io/1/?t=1"))
	t.Logf("handshake with Redis down: %d %q after %v", code, body, time.Since(start).Round(100*time.Millisecond))
	if code != 503 || !strings.Contains(body, "session store unavailable") || time.Since(start) > 7*time.Second {
		t.Errorf("handshake with Redis down: %d %q after %v, want 503 within the 5 s hold", code, body, time.Since(start))
	}
	maxRSS := 0
	for time.Since(down) < 30*time.Second {
		if code, _, _ := get(t, admin+"/healthz"); code != 200 {
			t.Errorf("healthz with Redis down: %d", code)
		}
		maxRSS = max(maxRSS, rssKiB(t, gw))
		time.Sleep(time.Second)
	}
	srv.Restart(t)
	t.Logf("gateway RSS %d KiB before, at most %d KiB during 30 s without Redis", rssBefore, maxRSS)
	if maxRSS > rssBefore+64<<10 {
		t.Errorf("gateway RSS grew from %d to %d KiB while Redis was down", rssBefore, maxRSS)
	}
	passed(t, "websocket", run)
	waitUntil(t, "ready again", 10*time.Second, func() error {
		if code, body, _ := get(t, admin+"/readyz"); code != 200 {
			return fmt.Errorf("readyz %d %q", code, body)
		}
		return nil
	})
	for _, p := range []*proc{gw, w} {
		select {
		case <-p.done:
			t.Errorf("%s exited", p.name)
		default:
		}
	}
}

// Redis restarted from a snapshot taken a moment earlier, as after the
// promotion of a replica that lagged: what happened since is gone from
// Redis. Sessions that did nothing since keep their connection and work;
// a websocket session whose routes and signals Redis lost is closed
// (without 0::), and a polling session whose signals it lost is ended (its
// next poll is answered 7:::1+0), so their clients reconnect instead of
// waiting for acks that never come. The gateway places the rollback
// (docs/redis.md, "Routing back") rather than ending every session.
func TestRedisRolledBackEndsOnlyWhatItLost(t *testing.T) {
	srv := testredis.StartArgs(t)
	c := &cluster{t: t, redis: srv, rdb: srv.Client(t), keys: bus.NewKeys("", 0)}
	gw := c.gateway("a", "-polling-duration", "2s", "-admin-addr", "127.0.0.1:0")
	c.worker("w", "echo")
	base := "http://" + gw.addr
	echo := func(ws *websocket.Conn, id int) {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `5:%d+::{"name":"echo","args":[%d]}`, id, id)); err != nil {
			t.Fatal(err)
		}
		if m, want := readText(t, ws), fmt.Sprintf("6:::%d+[%d]", id, id); m != want {
			t.Fatalf("answer %q, want %q", m, want)
		}
	}
	var idle []*websocket.Conn
	for range 3 {
		_, ws := openWS(t, base, true)
		echo(ws, 1)
		idle = append(idle, ws)
	}
	_, active := openWS(t, base, true)
	echo(active, 1)
	polling := handshake(t, gw)
	pollURL := func(n int) string { return gw.url(fmt.Sprintf("/socket.io/1/xhr-polling/%s?t=%d", polling, n)) }
	if _, body, _ := get(t, pollURL(1)); body != "1::" {
		t.Fatalf("first poll %q", body)
	}
	if _, body, _ := get(t, pollURL(2)); !strings.Contains(body, "welcome") {
		t.Fatalf("second poll %q, want the welcome", body)
	}

	ctx := context.Background()
	if err := c.rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 6; i++ {
		echo(active, i)
	}
	if code, body, _ := post(t, pollURL(3), "text/plain", `5:1+::{"name":"echo","args":[1]}`); code != 200 || body != "1" {
		t.Fatalf("POST: %d %q", code, body)
	}
	if _, body, _ := get(t, pollURL(4)); body != "6:::1+[1]" {
		t.Fatalf("poll for the ack: %q", body)
	}
	srv.Kill(t)
	srv.Restart(t) // from the snapshot (its dump.rdb)

	_ = active.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, b, err := active.ReadMessage()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the websocket session whose signals Redis lost is still open after 15 s")
			}
			break
		}
		if string(b) == "0::" {
			t.Fatal("the websocket session Redis lost was sent 0:: (a 0.9 client would not reconnect)")
		}
	}
	n := 5
	waitUntil(t, "the polling session whose signals Redis lost ended", 15*time.Second, func() error {
		n++
		if _, body, _ := get(t, pollURL(n)); body != "7:::1+0" {
			return fmt.Errorf("poll answered %q", body)
		}
		return nil
	})
	for _, ws := range idle {
		echo(ws, 2)
	}
	// The reader of the active session's partition finds the rollback
	// when it reads again (each retries within DefaultRouteRetryMax).
	waitUntil(t, "the rollback placed", 5*time.Second, func() error {
		if !strings.Contains(gw.logText(), "Redis rolled back route messages already applied here") {
			return errors.New("not logged")
		}
		return nil
	})
	if logs := gw.logText(); routeGapLogRE.MatchString(logs) {
		t.Errorf("the gateway did not place the rollback:\n%s", logs)
	}
	// Each committer shard finds its own lost batches.
	if n := metricAdmin(t, gw, `realtime_gateway_commit_rollbacks_total{complete="true"}`); n < 1 {
		t.Errorf("%v commit rollbacks counted, want at least 1", n)
	}
}
