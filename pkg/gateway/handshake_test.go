package gateway

import (
	"context"
	"net/http"
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
	poll := tg.pollAsync("/socket.io/1/xhr-polling/" + sid + "?t=2")
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
				tg.rdb.Publish(ctx, tg.keys.GatewayChannel(node), r.String())
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
