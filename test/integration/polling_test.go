package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/haproxycfg"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// pollURL is the xhr-polling URL of a session with cache-buster t.
func pollURL(p *proc, sid string, t int) string {
	return p.url(fmt.Sprintf("/socket.io/1/xhr-polling/%s?t=%d", sid, t))
}

// pollAll polls (new t each time, spread over the gateways) until want
// packets other than noops arrived or the deadline passed, and returns them
// and how many polls it took.
func pollAll(t *testing.T, gws []*proc, sid string, t0, want int, deadline time.Duration) ([]string, int) {
	t.Helper()
	var got []string
	end := time.Now().Add(deadline)
	polls := 0
	for len(got) < want && time.Now().Before(end) {
		_, body, _ := get(t, pollURL(gws[polls%len(gws)], sid, t0+polls))
		polls++
		for _, p := range splitPayload(body) {
			if p == "7:::1+0" || strings.HasPrefix(p, "0::") {
				t.Fatalf("session ended after %d packets: %q", len(got), p)
			}
			if p != "8::" {
				got = append(got, p)
			}
		}
	}
	return got, polls
}

// Field fault 1: one POST framing 1001 acked events (what the 0.9 client
// sends after a burst of emits while a POST was in flight) is answered in
// full, and so are 3000: the session is never ended for overflow while its
// client drains its mailbox.
func TestPollingBurstIsAnswered(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a"), c.gateway("b")
	c.worker("w", "echo")
	for _, n := range []int{1001, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sid := handshake(t, a)
			pollAll(t, []*proc{a}, sid, 1, 2, 10*time.Second) // 1:: and the welcome
			packets := make([]string, n)
			for i := range packets {
				packets[i] = fmt.Sprintf(`5:%d+::{"name":"echo","args":[%d]}`, i+1, i+1)
			}
			status, body, _ := post(t, pollURL(b, sid, 100), "text/plain;charset=UTF-8", frame(packets...))
			if status != 200 || body != "1" {
				t.Fatalf("POST: %d %q", status, body)
			}
			// Nobody polls until the worker has answered every packet, so the
			// whole burst waits in the mailbox at once.
			mailbox, session := c.keys.Mailbox(sid), c.keys.Session(sid)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				depth, _ := c.rdb.LLen(context.Background(), mailbox).Result()
				alive, _ := c.rdb.Exists(context.Background(), session).Result()
				if depth >= int64(n) || alive == 0 || time.Now().After(deadline) {
					break
				}
			}
			got, polls := pollAll(t, []*proc{a, b}, sid, 101, n, 60*time.Second)
			if len(got) != n {
				t.Fatalf("%d of %d acks arrived", len(got), n)
			}
			for i, p := range got {
				if want := fmt.Sprintf("6:::%d+[%d]", i+1, i+1); p != want {
					t.Fatalf("answer %d is %q, want %q", i, p, want)
				}
			}
			t.Logf("%d acks in %d polls", n, polls)
		})
	}
}

// A poll takes everything waiting, up to -poll-batch-bytes (not a packet
// count): 1000 waiting packets come in one answer; with a 1000-byte bound,
// in answers of at most 1000 bytes.
func TestPollTakesAllUpToByteBound(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a")
	small := c.gateway("small", "-poll-batch-bytes", "1000")
	for _, tc := range []struct {
		gw       *proc
		maxBytes int
	}{{a, 1 << 20}, {small, 1000}} {
		sid := handshake(t, tc.gw)
		get(t, pollURL(tc.gw, sid, 1))
		packets := make([]string, 1000)
		for i := range packets {
			packets[i] = fmt.Sprintf("3:::%04d", i) // 8 bytes
		}
		if err := c.store().Deliver(context.Background(), sid, packets...); err != nil {
			t.Fatal(err)
		}
		var got []string
		for polls := 1; len(got) < len(packets); polls++ {
			_, body, _ := get(t, pollURL(tc.gw, sid, 1+polls))
			batch := splitPayload(body)
			if n := len(strings.Join(batch, "")); n > tc.maxBytes {
				t.Fatalf("an answer carried %d bytes of packets, bound %d", n, tc.maxBytes)
			}
			got = append(got, batch...)
			if tc.maxBytes > 1000*8 && polls > 1 {
				t.Fatalf("1000 waiting packets took %d polls, want 1", polls)
			}
		}
		if strings.Join(got, ",") != strings.Join(packets, ",") {
			t.Fatalf("packets arrived out of order or changed")
		}
	}
}

// The gateway's mailbox bounds are stored with the session and honoured by
// the worker that delivers to it: a client that stops polling while its
// mailbox is over -mailbox-bytes for -mailbox-drain-timeout is ended with
// reason overflow by the worker's delivery.
func TestMailboxBoundsHonouredByWorkers(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a", "-mailbox-bytes", "2000", "-mailbox-drain-timeout", "500ms", "-max-body-bytes", "8000", "-max-packet-bytes", "8000")
	c.worker("w", "echo")
	sid := handshake(t, a)
	watched := c.watchSignals(sid)
	pollAll(t, []*proc{a}, sid, 1, 2, 10*time.Second)
	arg := strings.Repeat("x", 100)
	packets := make([]string, 30) // about 3,500 bytes of echoes: over 2000, under 4 × 2000
	for i := range packets {
		packets[i] = `5:::{"name":"echo","args":["` + arg + `"]}`
	}
	if status, _, _ := post(t, pollURL(a, sid, 10), "text/plain;charset=UTF-8", frame(packets...)); status != 200 {
		t.Fatalf("POST: %d", status)
	}
	time.Sleep(time.Second) // not drained for longer than the drain timeout
	if status, _, _ := post(t, pollURL(a, sid, 11), "text/plain;charset=UTF-8", packets[0]); status != 200 {
		t.Fatalf("POST: %d", status)
	}
	waitUntil(t, "an overflow disconnect", 10*time.Second, func() error {
		sigs := describe(watched())
		if n := len(sigs); n == 0 || sigs[n-1] != "disconnect overflow" {
			return fmt.Errorf("signals %q", sigs)
		}
		return nil
	})
	if _, body, _ := get(t, pollURL(a, sid, 12)); body != "7:::1+0" {
		t.Fatalf("poll after the overflow answered %q", body)
	}
}

// watchSignals tails the partition stream of sid (workers trim what they
// handled) and returns a func that reports the session's signals so far.
func (c *cluster) watchSignals(sid string) func() []bus.Signal {
	var mu sync.Mutex
	var sigs []bus.Signal
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	stream := c.keys.StreamFor(sid)
	go func() {
		last := "0"
		for ctx.Err() == nil {
			res, err := c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Block: 200 * time.Millisecond}).Result()
			if err != nil {
				continue
			}
			for _, m := range res[0].Messages {
				last = m.ID
				if s, err := bus.ParseSignal(m.ID, m.Values); err == nil && s.SID == sid {
					mu.Lock()
					sigs = append(sigs, s)
					mu.Unlock()
				}
			}
		}
	}()
	return func() []bus.Signal {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sigs)
	}
}

// Field fault 5: two polls with the same cache-buster, each after a new
// message was queued, get each message once: a batch whose answer was
// written whole is never delivered again.
func TestSameCacheBusterGetsNewData(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a"), c.gateway("b")
	sid := handshake(t, a)
	get(t, pollURL(a, sid, 7))
	for i, gw := range []*proc{a, b, a} {
		msg := fmt.Sprintf("3:::message %d", i)
		if err := c.store().Deliver(context.Background(), sid, msg); err != nil {
			t.Fatal(err)
		}
		if _, body, _ := get(t, pollURL(gw, sid, 7)); body != msg {
			t.Fatalf("poll %d with t=7 answered %q, want %q", i, body, msg)
		}
	}
}

// Field fault 3: a poll on a session a websocket (or htmlfile) holds is
// parked, not answered at once (which the client repeats in a hot loop):
// answered 8:: after the polling duration, and at once when the stream
// ends, after which the client learns the session is gone.
func TestPollOnStreamSessionIsParked(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a", "-polling-duration", "1s"), c.gateway("b", "-polling-duration", "1s")
	t.Run("websocket", func(t *testing.T) {
		sid := handshake(t, a)
		ws := dialWS(t, a, sid)
		if m := readWS(t, ws); m != "1::" {
			t.Fatalf("first frame %q", m)
		}
		start := time.Now()
		polls := 0
		for time.Since(start) < 2500*time.Millisecond {
			_, body, _ := get(t, pollURL(b, sid, polls))
			polls++
			if body != "8::" {
				t.Fatalf("poll on a websocket session answered %q", body)
			}
		}
		if polls > 3 {
			t.Fatalf("%d polls in 2.5 s: answered without waiting", polls)
		}
		// The stream ends while a poll waits: the poll is answered at once,
		// and the next one gets "not handshaken" (the client reconnects).
		done := make(chan string, 1)
		go func() { _, body, _ := get(t, pollURL(b, sid, 100)); done <- body }()
		time.Sleep(300 * time.Millisecond)
		ws.Close()
		select {
		case <-done:
		case <-time.After(900 * time.Millisecond):
			t.Fatal("the waiting poll was not answered when the stream ended")
		}
		if _, body, _ := get(t, pollURL(b, sid, 101)); body != "7:::1+0" {
			t.Fatalf("poll after the stream ended answered %q", body)
		}
		b.logged(regexp.MustCompile(`(reason=poll_on_stream)`))
	})
	t.Run("htmlfile", func(t *testing.T) {
		sid := handshake(t, a)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url("/socket.io/1/htmlfile/"+sid+"?t=1"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, body, _ := get(t, pollURL(b, sid, 1)); body != "8::" || time.Since(start) < 900*time.Millisecond {
			t.Fatalf("poll on an htmlfile session answered %q after %v", body, time.Since(start))
		}
	})
}

// The official client under a burst of 1001 acked emits and 1001 plain ones
// over xhr-polling, with a millisecond clock and with a clock that ticks
// every 100 ms (repeated cache-busters): every ack and every echo arrives
// exactly once, in order, and no client loses its session.
func TestOfficialClientBurstAndCoarseClock(t *testing.T) {
	script := nodeScript(t, "burst.js")
	c := newCluster(t)
	gws := []*proc{c.gateway("a"), c.gateway("b")}
	c.worker("w", "echo")
	for _, tick := range []string{"0", "100"} {
		t.Run("tick="+tick, func(t *testing.T) {
			out := runNode(t, script, "--urls", strings.Join(urls(gws...), ","), "--clients", "3", "--burst", "1001", "--tick", tick)
			if !strings.Contains(out, "9 passed, 0 failed") {
				t.Fatalf("unexpected result:\n%s", out)
			}
		})
	}
}

// The reference answers a POST of 1001 acked events in full and gives a
// poll with a repeated cache-buster the new packets: we answer the same,
// packet for packet.
func TestPollingBurstMatchesReference(t *testing.T) {
	ref := reference(t, "POLLING_DURATION=2")
	c := newCluster(t)
	g := c.gateway("a", "-polling-duration", "2s")
	c.worker("w", "echo")
	const n = 1001
	packets := make([]string, n)
	for i := range packets {
		packets[i] = fmt.Sprintf(`5:%d+::{"name":"echo","args":[%d]}`, i+1, i+1)
	}
	run := func(base string) []string {
		status, body, _ := get(t, base+"/socket.io/1/?t=1")
		sid, _, _ := strings.Cut(body, ":")
		if status != 200 || sid == "" {
			t.Fatalf("%s handshake: %d %q", base, status, body)
		}
		poll := func(t0 int) []string {
			_, body, _ := get(t, fmt.Sprintf("%s/socket.io/1/xhr-polling/%s?t=%d", base, sid, t0))
			return splitPayload(body)
		}
		var got []string
		for i := 0; !strings.Contains(strings.Join(got, ","), "welcome") && i < 10; i++ { // 1:: and the welcome event
			got = append(got, poll(10+i)...)
		}
		if status, body, _ := post(t, fmt.Sprintf("%s/socket.io/1/xhr-polling/%s?t=50", base, sid), "text/plain;charset=UTF-8", frame(packets...)); status != 200 || body != "1" {
			t.Fatalf("%s POST: %d %q", base, status, body)
		}
		time.Sleep(2 * time.Second) // every ack waits for the next poll
		var acks []string
		for i := 0; len(acks) < n && i < 50; i++ {
			// The same t every time: each poll must bring new packets.
			for _, p := range poll(60) {
				if p != "8::" {
					acks = append(acks, p)
				}
			}
		}
		return acks
	}
	theirs, ours := run(ref), run("http://"+g.addr)
	if len(theirs) != n {
		t.Fatalf("the reference answered %d of %d", len(theirs), n)
	}
	if strings.Join(ours, ",") != strings.Join(theirs, ",") {
		t.Fatalf("acks differ from the reference's: %d vs %d, ours begin %q", len(ours), len(theirs), ours[:min(3, len(ours))])
	}
}

// dyingGateway stands in, behind the balancer, for a gateway that dies
// between taking a poll's batch from Redis and writing it: for each poll it
// runs the session store's poll as a gateway would (taking the batch, if
// any, as node "dying"), then closes the connection without an answer, so
// the balancer retries the same GET on another gateway. Anything else it
// forwards to a real gateway. It reports how many batches it took.
func (c *cluster) dyingGateway(real *proc) (haproxycfg.Server, *atomic.Int64) {
	c.t.Helper()
	st := session.New(c.rdb, session.Config{Keys: c.keys, Node: "dying"})
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: real.addr})
	var taken, seq atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // socket.io 1 xhr-polling <sid>
		if r.Method != http.MethodGet || len(parts) != 4 || parts[2] != "xhr-polling" || r.URL.Query().Has("disconnect") {
			proxy.ServeHTTP(w, r)
			return
		}
		reply, err := st.Poll(r.Context(), parts[3], "xhr-polling", strconv.FormatInt(seq.Add(1), 10), r.URL.Query().Get("t"), false)
		if err == nil && reply.Owned {
			taken.Add(1)
		}
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	c.t.Cleanup(func() { _ = srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	return haproxycfg.Server{Name: "dying", Addr: l.Addr().String(), CheckPort: port}, &taken
}

// Field fault 5, the other half: a poll whose answer was lost (its gateway
// took the batch and died before writing it) is retried by the shipped
// haproxy config on another gateway, with the same t, and gets that batch;
// official clients under a 100 ms clock, whose next polls repeat t all the
// time, still get everything exactly once.
func TestRetriedPollGetsLostBatch(t *testing.T) {
	// Parallel: a cluster, haproxy and dying gateway of its own; its
	// clients run on a 100 ms clock.
	t.Parallel()
	script := nodeScript(t, "burst.js")
	c := newCluster(t)
	gws, admins := c.lbGateways(2)
	c.worker("w", "echo")
	dying, taken := c.dyingGateway(gws[0])
	lb := c.haproxyServers(append(servers(gws, admins), dying))
	out := runNode(t, script, "--urls", lb, "--clients", "3", "--burst", "100", "--tick", "100")
	if !strings.Contains(out, "9 passed, 0 failed") {
		t.Fatalf("unexpected result:\n%s", out)
	}
	if taken.Load() == 0 {
		t.Fatal("the dying gateway never took a batch: the retry path was not exercised")
	}
	t.Logf("%d batches lost with their gateway and delivered by the retry", taken.Load())
}
