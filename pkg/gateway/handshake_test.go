package gateway

import (
	"context"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// Handshakes: the answer's fields, JSONP, origins refused as 403 or as a
// JSONP error, a bad JSONP index, and the connection limit (503 with
// Retry-After).
func TestHandshake(t *testing.T) {
	tg := newLiveGateway(t, Config{Origins: []string{"example.com:*"}, MaxConnections: 1,
		HeartbeatTimeout: 40 * time.Second, CloseTimeout: 50 * time.Second,
		Transports: []string{TransportXHRPolling, TransportJSONPPolling}})
	allowed := http.Header{"Origin": {"http://example.com:3000"}}
	evil := http.Header{"Origin": {"http://evil.example"}}
	code, body, h := tg.do(http.MethodGet, "/socket.io/1/?t=1", "", allowed)
	sid, rest, _ := strings.Cut(body, ":")
	if code != 200 || len(sid) != 22 || rest != "40:50:xhr-polling,jsonp-polling" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("handshake: %d %q %q", code, body, h.Get("Content-Type"))
	}
	code, body, h = tg.do(http.MethodGet, "/socket.io/1/?jsonp=2", "", allowed)
	if code != 200 || !strings.HasPrefix(body, `io.j[2]("`) || !strings.HasSuffix(body, `:40:50:xhr-polling,jsonp-polling");`) ||
		h.Get("Content-Type") != "application/javascript" {
		t.Errorf("jsonp handshake: %d %q %q", code, body, h.Get("Content-Type"))
	}
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
		body   string
		reason rejectReason
	}{
		{"bad origin", "/socket.io/1/", evil, 403, "handshake bad origin", rejectHandshakeBadOrigin},
		{"no origin", "/socket.io/1/", nil, 403, "handshake bad origin", rejectHandshakeBadOrigin},
		{"referer allowed", "/socket.io/1/", http.Header{"Referer": {"http://example.com/chat"}}, 200, "", notRejected},
		{"bad origin, jsonp", "/socket.io/1/?jsonp=0", evil, 200, `io.j[0](new Error("handshake bad origin"));`, rejectHandshakeBadOrigin},
		{"bad jsonp index", "/socket.io/1/?jsonp=x", allowed, 400, "bad jsonp index", rejectBadJSONPIndex},
	} {
		before := tg.rejections(tc.reason)
		code, body, _ := tg.do(http.MethodGet, tc.path, "", tc.header)
		if code != tc.status || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.status, tc.body)
		}
		if tc.reason != notRejected && tg.rejections(tc.reason) != before+1 {
			t.Errorf("%s: no %s rejection counted", tc.name, tc.reason)
		}
	}

	// One connection held (a parked poll) reaches MaxConnections 1.
	code, body, _ = tg.do(http.MethodGet, "/socket.io/1/xhr-polling/"+sid, "", allowed)
	if code != 200 || body != "1::" {
		t.Fatalf("first poll: %d %q", code, body)
	}
	poll := make(chan [2]string, 1)
	go func() { // pollAsync with the allowed Origin
		req, _ := http.NewRequest(http.MethodGet, tg.srv.URL+"/socket.io/1/xhr-polling/"+sid+"?t=2", nil)
		req.Header = allowed
		resp, err := tg.srv.Client().Do(req)
		if err != nil {
			poll <- [2]string{"error", err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		poll <- [2]string{resp.Status[:3], string(b)}
	}()
	tg.parked(sid)
	waitUntil(t, "poll held", func() bool { return tg.g.held.Load() == 1 })
	code, body, h = tg.do(http.MethodGet, "/socket.io/1/", "", allowed)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || tg.rejections(rejectHandshakeOverConnections) != 1 {
		t.Errorf("over connections: %d %q Retry-After %q", code, body, h.Get("Retry-After"))
	}
	code, body, _ = tg.do(http.MethodGet, "/socket.io/1/?jsonp=1", "", allowed)
	if code != 200 || !strings.HasPrefix(body, "io.j[1](new Error(") {
		t.Errorf("over connections, jsonp: %d %q", code, body)
	}
	if err := tg.g.store.Deliver(context.Background(), sid, "3:::bye"); err != nil {
		t.Fatal(err)
	}
	waitPoll(t, poll, "200", "3:::bye")
}

// fakeAuthorizer answers the gateway's authorize signals as a worker
// would, with verdict(handshake data) -> (verdict, reason, data), until the
// test ends. The gateway must use one partition.
func fakeAuthorizer(t *testing.T, tg *liveGateway, verdict func(hs string) (string, string, string)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		last := "0"
		for ctx.Err() == nil {
			res, err := tg.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{tg.keys.Stream(0), last}, Block: 100 * time.Millisecond}).Result()
			if err != nil {
				continue
			}
			for _, e := range res[0].Messages {
				last = e.ID
				s, err := bus.ParseSignal(e.ID, e.Values)
				if err != nil || s.Kind != bus.KindAuthorize {
					continue
				}
				node, id, _ := strings.Cut(s.Reply, " ")
				v, reason, data := verdict(s.Data)
				r := bus.Route{Op: bus.OpAuth, SID: id, Arg: v, Room: reason, Packet: data}
				_, _ = bus.AppendRoute(ctx, tg.rdb, tg.keys.RouteStream(tg.keys.PartitionOf(s.SID), node), r.String())
			}
		}
	}()
}

// Authorization: the workers' verdict admits (keeping their data with the
// session), refuses (403) or fails (500); with no answer in time the
// handshake is refused, or admitted when failing open.
func TestHandshakeAuthorize(t *testing.T) {
	keys := bus.NewKeys("", 1)
	tg := newLiveGateway(t, Config{Keys: keys, Authorize: true, AuthorizeTimeout: 300 * time.Millisecond})
	if code, body := tg.get("/socket.io/1/"); code != 500 || body != "handshake error" {
		t.Errorf("no authorizer, fail-closed: %d %q", code, body)
	}
	open := newLiveGatewayOn(t, tg.red, Config{Node: "gw-open", Keys: keys, Authorize: true,
		AuthorizeTimeout: 300 * time.Millisecond, AuthorizeFailOpen: true})
	if code, _ := open.get("/socket.io/1/"); code != 200 {
		t.Errorf("no authorizer, fail-open: %d", code)
	}
	tg = newLiveGatewayOn(t, tg.red, Config{Node: "gw-auth", Keys: keys, Authorize: true})
	fakeAuthorizer(t, tg, func(hs string) (string, string, string) {
		switch {
		case strings.Contains(hs, "user=ann"):
			return "1", "", `{"user":"ann"}`
		case strings.Contains(hs, "user=bob"):
			return "0", "banned", ""
		}
		return "e", "hook failed", ""
	})
	if code, body := tg.get("/socket.io/1/?user=ann"); code != 200 || !strings.Contains(body, ":60:60:") {
		t.Errorf("allowed: %d %q", code, body)
	}
	if code, body := tg.get("/socket.io/1/?user=bob"); code != 403 || body != "handshake unauthorized" {
		t.Errorf("denied: %d %q", code, body)
	}
	if code, body := tg.get("/socket.io/1/?user=eve"); code != 500 || body != "handshake error" {
		t.Errorf("hook failed: %d %q", code, body)
	}
	if code, body, _ := tg.do(http.MethodGet, "/socket.io/1/?user=bob&jsonp=4", "", nil); code != 200 || body != `io.j[4](new Error("handshake unauthorized"));` {
		t.Errorf("denied, jsonp: %d %q", code, body)
	}
}

// usedMemory returns Redis's INFO memory used_memory, in bytes.
func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no used_memory in %q", info)
	return 0
}

// A session keeps only the allow-listed headers of its handshake, and at
// most MaxHandshakeBytes of handshake data: 200 handshakes carrying a
// 500 KB header (an allow-listed one for half of them, another for the
// rest) add less than 1 MB to Redis (all headers were kept before:
// about 100 MB).
func TestHandshakeDataBounded(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	ctx := context.Background()
	sid := tg.handshakeFrom(http.Header{"User-Agent": {"test-agent"}, "Cookie": {"a=1", "b=2"},
		"Accept-Language": {"fr"}, "X-Junk": {"not kept"}, "Authorization": {"Bearer not kept"}})
	hs, err := tg.g.store.Handshake(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user-agent": "test-agent", "cookie": "a=1, b=2", "accept-language": "fr",
		"host": strings.TrimPrefix(tg.srv.URL, "http://")}
	if !maps.Equal(hs.Headers, want) {
		t.Errorf("kept headers %q, want %q", hs.Headers, want)
	}

	big := strings.Repeat("x", 500_000)
	before := usedMemory(t, tg.rdb)
	dropped := counterValue(t, tg.g.metrics.HandshakeHeadersDropped)
	var sids []string
	for i := range 200 {
		h := http.Header{"User-Agent": {"test-agent"}, "X-Junk": {big}}
		if i%2 == 0 {
			h = http.Header{"User-Agent": {"test-agent"}, "Cookie": {"c=" + big}}
		}
		sids = append(sids, tg.handshakeFrom(h))
	}
	grown := usedMemory(t, tg.rdb) - before
	t.Logf("200 handshakes with a 500 KB header: Redis used_memory grew %d bytes", grown)
	if grown >= 1<<20 {
		t.Errorf("200 handshakes with a 500 KB header added %d bytes to Redis, want under 1 MiB", grown)
	}
	if n := counterValue(t, tg.g.metrics.HandshakeHeadersDropped) - dropped; n != 100 {
		t.Errorf("%v headers dropped, want 100 (the big cookies)", n)
	}
	for _, sid := range sids[:2] {
		hs, err := tg.g.store.Handshake(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		if hs.Headers["user-agent"] != "test-agent" || hs.Headers["cookie"] != "" || hs.Headers["x-junk"] != "" {
			t.Errorf("kept %q, %d bytes of cookie, %d of x-junk: want the user agent, not the cookie over the cap nor x-junk",
				hs.Headers["user-agent"], len(hs.Headers["cookie"]), len(hs.Headers["x-junk"]))
		}
	}
	for _, sid := range sids {
		if n, err := tg.rdb.HStrLen(ctx, tg.keys.Session(sid), "hs").Result(); err != nil || n > DefaultMaxHandshakeBytes || n == 0 {
			t.Fatalf("session %s: hs is %d bytes (%v), want 1 to %d", sid, n, err, DefaultMaxHandshakeBytes)
		}
	}
}

// Over MaxHandshakeBytes the largest kept header goes first, and the
// others stay; a handshake whose URL alone is over it is refused with 414
// (a jsonp one with the error in a script), counted.
func TestHandshakeDataCap(t *testing.T) {
	tg := newLiveGateway(t, Config{MaxHandshakeBytes: 2048})
	ctx := context.Background()
	dropped := counterValue(t, tg.g.metrics.HandshakeHeadersDropped)
	sid := tg.handshakeFrom(http.Header{"Cookie": {strings.Repeat("c", 1500)}, "User-Agent": {strings.Repeat("u", 1000)}})
	hs, err := tg.g.store.Handshake(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hs.Headers["cookie"]; ok || len(hs.Headers["user-agent"]) != 1000 {
		t.Errorf("kept %d bytes of cookie and %d of user agent; want the cookie (largest) dropped, the user agent kept",
			len(hs.Headers["cookie"]), len(hs.Headers["user-agent"]))
	}
	if n := counterValue(t, tg.g.metrics.HandshakeHeadersDropped) - dropped; n != 1 {
		t.Errorf("%v headers dropped, want 1", n)
	}
	long := "q=" + strings.Repeat("q", 2048)
	code, body, _ := tg.do(http.MethodGet, "/socket.io/1/?"+long, "", nil)
	if code != http.StatusRequestURITooLong || body != "handshake too large" || tg.rejections(rejectHandshakeTooLarge) != 1 {
		t.Errorf("long query: %d %q, %v rejections", code, body, tg.rejections(rejectHandshakeTooLarge))
	}
	code, body, _ = tg.do(http.MethodGet, "/socket.io/1/?jsonp=3&"+long, "", nil)
	if code != 200 || body != `io.j[3](new Error("handshake too large"));` {
		t.Errorf("long query, jsonp: %d %q", code, body)
	}
	if n := counterValue(t, tg.g.metrics.Handshakes.WithLabelValues("too_large")); n != 2 {
		t.Errorf("handshakes{result=too_large} = %v, want 2", n)
	}
}
