package gateway

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// pollAsync starts a poll GET and returns a channel with its status and body.
func (tg *liveGateway) pollAsync(path string) <-chan [2]string {
	ch := make(chan [2]string, 1)
	go func() {
		resp, err := tg.srv.Client().Get(tg.srv.URL + path)
		if err != nil {
			ch <- [2]string{"error", err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- [2]string{resp.Status[:3], string(b)}
	}()
	return ch
}

func waitPoll(t *testing.T, ch <-chan [2]string, status, body string) {
	t.Helper()
	select {
	case got := <-ch:
		if got[0] != status || got[1] != body {
			t.Errorf("poll answered %s %q, want %s %q", got[0], got[1], status, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poll not answered")
	}
}

// parked waits until a poll of sid is parked here.
func (tg *liveGateway) parked(sid string) {
	tg.t.Helper()
	waitUntil(tg.t, "poll parked", func() bool { _, ok := tg.g.polls.Load(sid); return ok })
}

// xhr-polling: a parked poll is woken by a delivery; POSTs commit their
// packets' signals and answer 1; a newer poll kicks the parked one; a session
// ended elsewhere answers its parked poll with the close packet.
func TestXHRPolling(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: 10 * time.Second})
	ctx := context.Background()
	sid := tg.openPolling()
	base := "/socket.io/1/xhr-polling/" + sid

	poll := tg.pollAsync(base + "?t=2")
	tg.parked(sid)
	if err := tg.g.store.Deliver(ctx, sid, "3:::one", "3:::two"); err != nil {
		t.Fatal(err)
	}
	waitPoll(t, poll, "200", "\ufffd7\ufffd3:::one\ufffd7\ufffd3:::two")

	if code, body := tg.post(base, "\ufffd6\ufffd3:::hi\ufffd17\ufffd5:1::{\"name\":\"e\"}"); code != 200 || body != "1" {
		t.Fatalf("POST: %d %q", code, body)
	}
	tg.waitSignals(sid, "message hi", "event e id=1")
	// The plain ack goes to the mailbox: the next poll takes it.
	if code, body := tg.get(base + "?t=3"); code != 200 || body != "6:::1" {
		t.Errorf("poll after POST: %d %q", code, body)
	}

	// A newer poll, here through another gateway, kicks the parked one.
	other := newLiveGatewayOn(t, tg.red, Config{Node: "gw-other", PollingDuration: 10 * time.Second})
	first := tg.pollAsync(base + "?t=5")
	tg.parked(sid)
	second := other.pollAsync(base + "?t=6")
	waitPoll(t, first, "200", "8::")
	other.parked(sid)
	if err := tg.g.committer.Commit(ctx, sid, tg.g.store.EndWrite(sid, "server", "0::")); err != nil {
		t.Fatal(err)
	}
	waitPoll(t, second, "200", "0::")
	// Later polls may get the 0:: again (kept for a poll that missed it),
	// then 7:::1+0.
	for i := 0; ; i++ {
		code, body := tg.get(base + "?t=7" + strconv.Itoa(i))
		if code == 200 && body == "7:::1+0" {
			break
		}
		if code != 200 || body != "0::" || i == 3 {
			t.Fatalf("poll %d of an ended session: %d %q", i, code, body)
		}
	}
	if code, body := tg.post(base, "3:::late"); code != 200 || body != "7:::1+0" {
		t.Errorf("POST to an ended session: %d %q", code, body)
	}
}

// jsonp-polling: answers are wrapped in io.j[i](...), POSTs carry the
// payload in the form field d, idle polls end with 8::; bad indexes and bodies are refused.
func TestJSONPPolling(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: 300 * time.Millisecond})
	sid := tg.handshake()
	base := "/socket.io/1/jsonp-polling/" + sid
	code, body, h := tg.do(http.MethodGet, base+"?t=1&i=3", "", nil)
	if code != 200 || body != `io.j[3]("1::");` || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") {
		t.Fatalf("first jsonp poll: %d %q %q", code, body, h.Get("Content-Type"))
	}
	form := url.Values{"d": {`"3:::hi"`}}.Encode()
	code, body, _ = tg.do(http.MethodPost, base, form, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if code != 200 || body != "1" {
		t.Fatalf("jsonp POST: %d %q", code, body)
	}
	tg.waitSignals(sid, "connect", "message hi")
	// A poll with nothing to take ends with 8:: after the polling duration.
	start := time.Now()
	code, body, _ = tg.do(http.MethodGet, base+"?t=2&i=1", "", nil)
	if code != 200 || body != `io.j[1]("8::");` || time.Since(start) < 250*time.Millisecond {
		t.Errorf("idle poll: %d %q after %v", code, body, time.Since(start))
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		reason                   rejectReason
	}{
		{"bad index", "GET", base + "?i=x", "", 400, rejectBadJSONPIndex},
		{"no field d", "POST", base, "e=1", 400, rejectBadJSONPBody},
		{"d not a JSON string", "POST", base, "d=3:::x", 400, rejectBadJSONPBody},
		{"bad form", "POST", base, "d=%zz", 400, rejectBadJSONPBody},
	} {
		before := tg.rejections(tc.reason)
		if code, _, _ := tg.do(tc.method, tc.path, tc.body, nil); code != tc.status || tg.rejections(tc.reason) != before+1 {
			t.Errorf("%s: %d, want %d and a %s rejection", tc.name, code, tc.status, tc.reason)
		}
	}
}

// POST bodies: too large (413), a malformed payload (its good packets before
// the fault committed, 400), a packet over the limit, and a POST before any
// GET (its packets processed for the default namespace).
func TestPostLimits(t *testing.T) {
	tg := newLiveGateway(t, Config{MaxBodyBytes: 1000, MaxPacketBytes: 100, MailboxBytes: 1000, PollBatchBytes: 1000})
	sid := tg.handshake()
	base := "/socket.io/1/xhr-polling/" + sid
	if code, body := tg.post(base, "3:::before any GET"); code != 200 || body != "1" {
		t.Fatalf("POST before GET: %d %q", code, body)
	}
	tg.waitSignals(sid, "message before any GET")
	if code, _ := tg.post(base, strings.Repeat("x", 1001)); code != http.StatusRequestEntityTooLarge || tg.rejections(rejectBodyTooLarge) != 1 {
		t.Errorf("large body: %d", code)
	}
	if code, _ := tg.post(base, "\ufffd5\ufffd3:::a\ufffd99"); code != http.StatusBadRequest || tg.rejections(rejectBadPayload) != 1 {
		t.Errorf("malformed payload: %d, %v rejections", code, tg.rejections(rejectBadPayload))
	}
	tg.waitSignals(sid, "message before any GET", "message a")
	if code, body := tg.post(base, "3:::"+strings.Repeat("y", 200)); code != http.StatusBadRequest || body != "packet too large\n" || tg.rejections(rejectPacketTooLarge) != 1 {
		t.Errorf("large packet: %d %q, %v rejections", code, body, tg.rejections(rejectPacketTooLarge))
	}
	if code, body := tg.post(base, "7:::x"); code != 200 || body != "1" || tg.rejections(rejectClientErrorPacket) != 1 {
		t.Errorf("error packet: %d %q", code, body)
	}
}

// A polling POST before the session's first GET opens the session as
// that GET would (the reference's handleClient connects on any request of
// a handshaken id): the app gets connect first, then the POST's packets;
// the first GET answers 1:: first; and a session whose GET never comes
// ends at its close timeout with a disconnect, so the app never sees
// packets of a socket that neither connected nor disconnected.
func TestPostBeforeFirstGetOpensSession(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: time.Second, CloseTimeout: 2 * time.Second, HeartbeatInterval: 500 * time.Millisecond})
	sid := tg.handshake()
	base := "/socket.io/1/xhr-polling/" + sid
	if code, body := tg.post(base+"?t=1", `5:1+::{"name":"early","args":[1]}`); code != 200 || body != "1" {
		t.Fatalf("POST before GET: %d %q", code, body)
	}
	if got := tg.signals(sid); !slices.Equal(got, []string{"connect", `event early [1] id=1+`}) {
		t.Fatalf("signals after the early POST: %q, want connect first", got)
	}
	if code, body := tg.get(base + "?t=2"); code != 200 || !strings.HasPrefix(body, "1::") {
		t.Fatalf("first GET: %d %q, want 1:: first", code, body)
	}
	if got := tg.signals(sid); !slices.Equal(got, []string{"connect", `event early [1] id=1+`}) {
		t.Fatalf("signals after the first GET: %q, want no second connect", got)
	}

	// A session whose client POSTs once and never polls.
	lone := tg.handshake()
	if code, body := tg.post("/socket.io/1/jsonp-polling/"+lone+"?t=1", "d="+url.QueryEscape(`"3:::hi"`)); code != 200 || !strings.Contains(body, "1") {
		t.Fatalf("jsonp POST before GET: %d %q", code, body)
	}
	tg.waitSignals(lone, "connect", "message hi")
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(tg.signals(lone), []string{"connect", "message hi", "disconnect reason=" + string(bus.ReasonTimeout)}) {
		if time.Now().After(deadline) {
			t.Fatalf("signals of a session that never polled: %q, want it ended at its close timeout", tg.signals(lone))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A gateway that drains answers parked polls with 8:: at once and holds
// new ones a second at most; its readiness fails.
func TestDrainPolls(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: 10 * time.Second})
	if !tg.g.Ready() {
		t.Fatal("not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tg.g.CheckReady(ctx); err != nil {
		t.Fatalf("CheckReady: %v", err)
	}
	sid := tg.openPolling()
	poll := tg.pollAsync("/socket.io/1/xhr-polling/" + sid + "?t=2")
	tg.parked(sid)
	tg.g.Drain(ctx)
	waitPoll(t, poll, "200", "8::")
	if tg.g.Ready() || tg.g.CheckReady(ctx) == nil {
		t.Error("ready while draining")
	}
	start := time.Now()
	if code, body := tg.get("/socket.io/1/xhr-polling/" + sid + "?t=3"); code != 200 || body != "8::" || time.Since(start) > 3*time.Second {
		t.Errorf("poll while draining: %d %q after %v", code, body, time.Since(start))
	}
}

// A newer poll of a session on the gateway where an older one is parked
// answers the older one 8:: at once, not after the polling duration.
func TestNewerPollOnSameGatewayKicksOlder(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: 20 * time.Second})
	sid := tg.openPolling()
	base := "/socket.io/1/xhr-polling/" + sid
	first := tg.pollAsync(base + "?t=5")
	// Parked in Redis too (the first poll's own registration here could
	// still be in place a moment after its answer).
	waitUntil(t, "the first poll parked", func() bool {
		pg, _ := tg.rdb.HGet(context.Background(), tg.keys.Session(sid), "pg").Result()
		return pg != ""
	})
	start := time.Now()
	second := tg.pollAsync(base + "?t=6")
	waitPoll(t, first, "200", "8::")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the older poll was answered after %v", d)
	}
	if err := tg.g.store.Deliver(context.Background(), sid, "3:::for the newer"); err != nil {
		t.Fatal(err)
	}
	waitPoll(t, second, "200", "3:::for the newer")
}

// A poll its client closes before the answer (a page closed or reloaded, a
// 0.9 transport that closed) ends the session at once, reason
// transport_close, not after the close timeout.
func TestAbortedPollEndsSession(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: 20 * time.Second, CloseTimeout: time.Minute})
	sid := tg.openPolling()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.srv.URL+"/socket.io/1/xhr-polling/"+sid+"?t=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := tg.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Parked in Redis (the first poll's registration here could still be
	// in place a moment after its answer).
	waitUntil(t, "the poll parked", func() bool {
		pg, _ := tg.rdb.HGet(context.Background(), tg.keys.Session(sid), "pg").Result()
		return pg != ""
	})
	cancel()
	<-done
	tg.waitSignals(sid, "connect", "disconnect reason=transport_close")
	if code, body := tg.get("/socket.io/1/xhr-polling/" + sid + "?t=3"); code != 200 || body != "7:::1+0" {
		t.Errorf("poll after the abort: %d %q, want the unknown session's 7:::1+0", code, body)
	}
}

// A packet a delivery took for a poll no longer held here (route O) is
// released, so that the next poll (a new t) gets it instead of trimming
// it as received; a poll whose duration ended (8::) is no longer parked in
// Redis, so no delivery is taken for it.
func TestOfferedPacketOfGonePollIsReleased(t *testing.T) {
	tg := newLiveGateway(t, Config{PollingDuration: 300 * time.Millisecond})
	ctx := context.Background()
	sid := tg.openPolling()
	base := "/socket.io/1/xhr-polling/" + sid
	hget := func(field string) string {
		v, _ := tg.rdb.HGet(ctx, tg.keys.Session(sid), field).Result()
		return v
	}

	// A poll of this node parked in Redis, then gone (its request ended
	// as the delivery took a packet for it).
	if r, err := tg.g.store.Poll(ctx, sid, TransportXHRPolling, "gone", "2", false); err != nil || r.Result != session.PollParked {
		t.Fatalf("poll = %+v, %v", r, err)
	}
	if err := tg.g.store.Deliver(ctx, sid, "3:::one"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the offered packet released", func() bool { return hget("io") == "" })
	if code, body := tg.get(base + "?t=3"); code != 200 || body != "3:::one" {
		t.Fatalf("next poll: %d %q", code, body)
	}

	// The polling duration ends: 8::, and the poll is no longer parked.
	if code, body := tg.get(base + "?t=4"); code != 200 || body != "8::" {
		t.Fatalf("poll at the end of its duration: %d %q", code, body)
	}
	if pg := hget("pg"); pg != "" {
		t.Fatalf("a poll answered 8:: is still parked in Redis: pg %q", pg)
	}
	if err := tg.g.store.Deliver(ctx, sid, "3:::two"); err != nil {
		t.Fatal(err)
	}
	if code, body := tg.get(base + "?t=5"); code != 200 || body != "3:::two" {
		t.Fatalf("poll after: %d %q", code, body)
	}
}

// A poll replaced by a newer one here gives back a packet offered to it
// that it did not take (the newer poll releases it in Redis), and takes
// none offered after; one that took its offer keeps it.
func TestPollWaiterReplace(t *testing.T) {
	offer := bus.Route{Op: bus.OpOffer, SID: "s", Arg: "1", Packet: "3:::a"}
	p := &pollWaiter{id: "1", sid: "s", ch: make(chan pollEvent, 1)}
	if !p.offer(offer) {
		t.Fatal("offer refused by a parked poll")
	}
	if !p.replace() {
		t.Fatal("replace of a poll holding an untaken offer: nothing to release")
	}
	if _, ok := p.takeOffer(); ok {
		t.Fatal("a replaced poll took the offer the newer poll releases")
	}
	if p.offer(offer) {
		t.Fatal("a replaced poll accepted an offer")
	}

	p = &pollWaiter{id: "1", sid: "s", ch: make(chan pollEvent, 1)}
	if p.offer(bus.Route{Op: bus.OpOffer, SID: "s", Arg: "2"}) {
		t.Fatal("an offer for another poll id was accepted")
	}
	p.offer(offer)
	if r, ok := p.takeOffer(); !ok || !r.Owned || r.Packets[0] != "3:::a" {
		t.Fatalf("takeOffer = %+v, %v", r, ok)
	}
	if p.replace() {
		t.Fatal("replace of a poll that took its offer asks to release it")
	}
	if _, ok := p.end(); ok {
		t.Fatal("end returned an offer already taken")
	}
}

// A polling session a worker's commit marked for overflow (its mailbox
// overflowed, declared for delivery only) and did not end, the worker
// killed in between: the gateway's reaper ends it with reason overflow and
// counts it so, not as a timeout.
func TestReapedOverflowIsCounted(t *testing.T) {
	tg := newLiveGateway(t, Config{ReapInterval: 100 * time.Millisecond})
	sid := tg.handshake()
	if code, body := tg.get("/socket.io/1/xhr-polling/" + sid + "?t=1"); code != 200 || !strings.HasPrefix(body, "1::") {
		t.Fatalf("first GET: %d %q", code, body)
	}
	// What lua/lib.lua's overflow_later leaves.
	ctx := context.Background()
	if err := tg.rdb.HSet(ctx, tg.keys.Session(sid), "ovf", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := tg.rdb.ZAdd(ctx, tg.keys.Deadlines(tg.keys.PartitionOf(sid)), redis.Z{Score: 0, Member: sid}).Err(); err != nil {
		t.Fatal(err)
	}
	tg.waitSignals(sid, "connect", "disconnect reason=overflow")
	m := tg.g.metrics.Disconnects.WithLabelValues(string(bus.ReasonOverflow))
	waitUntil(t, "the overflow disconnect counted", func() bool { return counterValue(t, m) == 1 })
	if n := counterValue(t, tg.g.metrics.Disconnects.WithLabelValues(string(bus.ReasonTimeout))); n != 0 {
		t.Errorf("%v timeouts counted, want 0", n)
	}
}
