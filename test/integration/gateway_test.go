package integration

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/session"
)

// store returns a session store on the cluster's Redis, as a worker would
// use it to deliver packets.
func (c *cluster) store() *session.Store {
	return session.New(c.rdb, session.Config{Keys: c.keys, Node: "test-worker"})
}

// Handshake on A, poll on B, POST on C: one session across three gateways.
func TestPollingAcrossGateways(t *testing.T) {
	c := newCluster(t)
	a, b, gc := c.gateway("a"), c.gateway("b"), c.gateway("c")
	sid := handshake(t, a)

	status, body, hdr := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=10"))
	if status != 200 || body != "1::" {
		t.Fatalf("first poll: %d %q", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Fatalf("poll content type %q", ct)
	}
	payload := frame(`5:::{"name":"hi"}`, "1::/chat:?tok=1", `5:1+:/chat:{"name":"e","args":[1]}`, "3:::plain😀")
	status, body, _ = post(t, gc.url("/socket.io/1/xhr-polling/"+sid+"?t=11"), "text/plain;charset=UTF-8", payload)
	if status != 200 || body != "1" {
		t.Fatalf("POST: %d %q", status, body)
	}
	got := describe(c.signals(sid, 5))
	want := []string{"connect", "event hi", "connect /chat ?tok=1", "event /chat e[1]", "message plain😀"}
	if !slices.Equal(got, want) {
		t.Fatalf("signals:\n got %q\nwant %q", got, want)
	}
	// The namespace echo waits in the mailbox for the next poll, on A.
	status, body, _ = get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=12"))
	if status != 200 || body != "1::/chat" {
		t.Fatalf("second poll: %d %q", status, body)
	}
}

// A packet delivered while a poll is parked on one gateway wakes it.
func TestParkedPollIsWoken(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a"), c.gateway("b")
	sid := handshake(t, a)
	get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=1"))
	done := make(chan string, 1)
	go func() {
		_, body, _ := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=2"))
		done <- body
	}()
	time.Sleep(200 * time.Millisecond) // let the poll park
	if err := c.store().Deliver(context.Background(), sid, "5:::{\"name\":\"x\"}", "3:::y😀"); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-done:
		want := "\ufffd16\ufffd5:::{\"name\":\"x\"}\ufffd7\ufffd3:::y😀"
		if body != want {
			t.Fatalf("woken poll %q, want %q", body, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("parked poll not woken")
	}
}

// The polling duration ends an idle poll with a noop; a second concurrent
// GET answers the older one with a noop.
func TestPollNoopAndConcurrentGet(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a", "-polling-duration", "500ms"), c.gateway("b", "-polling-duration", "5s")
	sid := handshake(t, a)
	get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=1"))
	start := time.Now()
	if _, body, _ := get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=2")); body != "8::" {
		t.Fatalf("idle poll answered %q", body)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("idle poll answered after %v", d)
	}
	older := make(chan string, 1)
	go func() {
		_, body, _ := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=3"))
		older <- body
	}()
	time.Sleep(200 * time.Millisecond)
	newer := make(chan string, 1)
	go func() {
		_, body, _ := get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=4"))
		newer <- body
	}()
	select {
	case body := <-older:
		if body != "8::" {
			t.Fatalf("older poll answered %q", body)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("older poll not answered when a newer one arrived")
	}
	<-newer
}

// kill -9 of the gateway holding a parked poll loses neither the session nor
// a message queued for it: the load balancer's retry (the same GET, same t)
// reaches another gateway.
func TestGatewayKilledMidPoll(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a"), c.gateway("b")
	sid := handshake(t, a)
	get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=1"))
	go func() {
		req, _ := http.NewRequest(http.MethodGet, a.url("/socket.io/1/xhr-polling/"+sid+"?t=2"), nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	a.kill()
	if err := c.store().Deliver(context.Background(), sid, "3:::kept"); err != nil {
		t.Fatal(err)
	}
	// Retried GET on b: the message is there.
	if _, body, _ := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=2")); body != "3:::kept" {
		t.Fatalf("retried poll answered %q", body)
	}
	// That answer was written whole (confirmed), so a poll with the same t
	// after it is the client's next one (its clock did not tick), not a
	// retry: it gets what came since, not the same batch again.
	_ = c.store().Deliver(context.Background(), sid, "3:::next")
	if _, body, _ := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=2")); body != "3:::next" {
		t.Fatalf("next poll with the same t answered %q", body)
	}
	_ = c.store().Deliver(context.Background(), sid, "3:::last")
	if _, body, _ := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"?t=3")); body != "3:::last" {
		t.Fatalf("next poll answered %q", body)
	}
}

// A polling session without contact for the close timeout ends with a
// disconnect signal, reason timeout.
func TestPollingSessionExpires(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a", "-close-timeout", "1s", "-polling-duration", "300ms", "-heartbeat-interval", "500ms")
	sid := handshake(t, a)
	get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=1"))
	got := describe(c.signals(sid, 2))
	if !slices.Equal(got, []string{"connect", "disconnect timeout"}) {
		t.Fatalf("signals %q", got)
	}
	if _, body, _ := get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=2")); body != "7:::1+0" {
		t.Fatalf("poll after expiry answered %q", body)
	}
}

func dialWS(t *testing.T, p *proc, sid string) *websocket.Conn {
	t.Helper()
	u := "ws://" + p.addr + "/socket.io/1/websocket/" + sid
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readWS returns the next frame that is not a heartbeat.
func readWS(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	for {
		if m := readFrame(t, conn); m != "2::" {
			return m
		}
	}
}

func readFrame(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func writeWS(t *testing.T, conn *websocket.Conn, s string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// A websocket session: 1:: first, namespace echo, immediate plain acks,
// heartbeats, delivery from anywhere, disconnect at once on close.
func TestWebSocketSession(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a"), c.gateway("b", "-heartbeat-interval", "300ms")
	sid := handshake(t, a)
	ws := dialWS(t, b, sid)
	if m := readWS(t, ws); m != "1::" {
		t.Fatalf("first frame %q", m)
	}
	writeWS(t, ws, "1::/chat:?x=1")
	if m := readWS(t, ws); m != "1::/chat" {
		t.Fatalf("namespace echo %q", m)
	}
	writeWS(t, ws, `5:7:/chat:{"name":"e","args":["a"]}`)
	if m := readWS(t, ws); m != "6::/chat:7" {
		t.Fatalf("plain ack %q", m)
	}
	if err := c.store().Deliver(context.Background(), sid, `5:::{"name":"pushed"}`); err != nil {
		t.Fatal(err)
	}
	if m := readWS(t, ws); m != `5:::{"name":"pushed"}` {
		t.Fatalf("delivered %q", m)
	}
	// The client leaves /chat (0::/chat): later packets for /chat are
	// dropped, the default namespace goes on.
	writeWS(t, ws, "0::/chat")
	writeWS(t, ws, `5:::/chat:{"name":"after leaving"}`)
	writeWS(t, ws, `5:::{"name":"still here"}`)
	// A websocket ping gets its pong; heartbeats keep coming.
	pong := make(chan string, 1)
	ws.SetPongHandler(func(data string) error {
		select {
		case pong <- data:
		default:
		}
		return nil
	})
	if err := ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var heartbeat bool
	var ponged string
	for !heartbeat || ponged == "" {
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat %v, pong %q", heartbeat, ponged)
		}
		heartbeat = readFrame(t, ws) == "2::" || heartbeat
		select {
		case ponged = <-pong:
		default:
		}
	}
	if ponged != "are you there" {
		t.Fatalf("pong %q", ponged)
	}
	ws.Close()
	got := describe(c.signals(sid, 6))
	want := []string{"connect", "connect /chat ?x=1", `event /chat e["a"]`, "disconnect /chat client", "event still here", "disconnect transport_close"}
	if !slices.Equal(got, want) {
		t.Fatalf("signals:\n got %q\nwant %q", got, want)
	}
}

// kill -9 of a gateway holding websockets: the survivors reap its sessions
// with reason gateway_lost.
func TestWebSocketGatewayLost(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a", "-liveness-ttl", "1s"), c.gateway("b", "-liveness-ttl", "1s")
	var sids []string
	for i := 0; i < 3; i++ {
		sid := handshake(t, b)
		ws := dialWS(t, a, sid)
		readWS(t, ws)
		sids = append(sids, sid)
	}
	a.kill()
	start := time.Now()
	for _, sid := range sids {
		got := describe(c.signals(sid, 2))
		if !slices.Equal(got, []string{"connect", "disconnect gateway_lost"}) {
			t.Fatalf("signals of %s: %q", sid, got)
		}
	}
	t.Logf("sessions reaped %v after the kill", time.Since(start))
}

// Bad input gets the protocol's error or the right status, and never takes
// the gateway down.
func TestBadInput(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a", "-max-body-bytes", "1000", "-max-packet-bytes", "500", "-admin-addr", "127.0.0.1:0")
	admin := "http://" + a.logged(regexp.MustCompile(`msg="admin listening" addr=(\S+)`))
	sid := handshake(t, a)
	get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=1"))
	big := strings.Repeat("x", 2000)
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		want                            string
	}{
		{"bad protocol", "GET", "/socket.io/2/", "", "", 500, "Protocol version not supported."},
		{"welcome", "GET", "/socket.io/", "", "", 200, "Welcome to socket.io."},
		{"unknown transport", "GET", "/socket.io/1/carrier-pigeon/" + sid, "", "", 400, ""},
		{"unknown sid poll", "GET", "/socket.io/1/xhr-polling/nosuchsid?t=5", "", "", 200, "7:::1+0"},
		{"unknown sid jsonp", "GET", "/socket.io/1/jsonp-polling/nosuchsid?t=5&i=3", "", "", 200, `io.j[3]("7:::1+0");`},
		{"unknown sid post", "POST", "/socket.io/1/xhr-polling/nosuchsid", "text/plain", "3:::x", 200, "7:::1+0"},
		{"bad jsonp index", "GET", "/socket.io/1/jsonp-polling/" + sid + "?i=x1", "", "", 400, ""},
		{"wrong method", "PUT", "/socket.io/1/xhr-polling/" + sid, "", "", 405, ""},
		{"body too large", "POST", "/socket.io/1/xhr-polling/" + sid, "text/plain", "3:::" + big, 413, ""},
		{"packet too large", "POST", "/socket.io/1/xhr-polling/" + sid, "text/plain", "\ufffd604\ufffd3:::" + big[:600], 400, ""},
		{"malformed frame", "POST", "/socket.io/1/xhr-polling/" + sid, "text/plain", "\ufffd99\ufffd3:::x", 400, ""},
		{"malformed packet accepted and dropped", "POST", "/socket.io/1/xhr-polling/" + sid, "text/plain", "nonsense", 200, "1"},
		{"bad event json", "POST", "/socket.io/1/xhr-polling/" + sid, "text/plain", `5:::{"name":`, 200, "1"},
		{"jsonp bad form", "POST", "/socket.io/1/jsonp-polling/" + sid, "application/x-www-form-urlencoded", "d=" + url.QueryEscape(`"unterminated`), 400, ""},
		{"jsonp not a string", "POST", "/socket.io/1/jsonp-polling/" + sid, "application/x-www-form-urlencoded", "d=" + url.QueryEscape(`{"a":1}`), 400, ""},
	}
	for _, tc := range cases {
		status, body, _ := do(t, tc.method, a.url(tc.path), tc.ctype, tc.body)
		if status != tc.status || (tc.want != "" && body != tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	// Still alive and serving the session.
	if _, body, _ := get(t, a.url("/socket.io/1/")); !strings.Contains(body, ":60:60:") {
		t.Fatalf("gateway unhealthy after bad input: %q", body)
	}
	// Each rejection was counted by reason and logged.
	_, metrics, _ := get(t, admin+"/metrics")
	for _, reason := range []string{"bad_protocol", "unknown_transport", "unknown_sid", "bad_jsonp_index", "bad_method",
		"body_too_large", "packet_too_large", "bad_payload", "malformed_packet", "bad_event", "bad_jsonp_body"} {
		// Every reason is exported from the start, at 0: the count must move.
		if n := metric(metrics, `realtime_gateway_rejected_total{reason="`+reason+`"}`); n < 1 {
			t.Errorf("no rejection counted for %s (%v)", reason, n)
		}
		if !strings.Contains(a.logText(), "reason="+reason) {
			t.Errorf("no log line for %s", reason)
		}
	}
	if status, body, _ := get(t, admin+"/readyz"); status != 200 {
		t.Errorf("readyz: %d %q", status, body)
	}
	// Unknown sid on websocket: 101, then the error packet, then a close.
	ws := dialWS(t, a, "nosuchsid")
	if m := readWS(t, ws); m != "7:::1+0" {
		t.Fatalf("websocket unknown sid: %q", m)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("websocket with unknown sid not closed")
	}
	// A websocket frame over -max-packet-bytes ends the session, and is
	// counted and logged like the polling one.
	sid = handshake(t, a)
	ws = dialWS(t, a, sid)
	if m := readWS(t, ws); m != "1::" {
		t.Fatalf("first frame %q", m)
	}
	// Rejections of one reason are logged at most once a second (the POST's
	// packet_too_large above was one).
	time.Sleep(1100 * time.Millisecond)
	before := strings.Count(a.logText(), "reason=packet_too_large")
	writeWS(t, ws, "3:::"+big[:600])
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break // closed
		}
	}
	if got := describe(c.signals(sid, 2)); !slices.Equal(got, []string{"connect", "disconnect transport_close"}) {
		t.Fatalf("signals after a websocket frame too large: %q", got)
	}
	if after := strings.Count(a.logText(), "reason=packet_too_large"); after != before+1 {
		t.Fatalf("packet_too_large logged %d times for the websocket frame, want once", after-before)
	}
}

// A handshake while Redis is unreachable is held and its session commit
// retried for -handshake-hold, then answered 503 "handshake error: session
// store unavailable" with Retry-After: after about the hold, not before,
// whether Redis is gone (each attempt refused at once, retried with
// backoff) or stalled (SIGSTOP: each attempt cut by its timeout).
func TestHandshakeWithoutRedis(t *testing.T) {
	c := newCluster(t)
	const hold = 1500 * time.Millisecond
	a := c.gateway("a", "-handshake-hold", hold.String())
	refused := func(what string) {
		t.Helper()
		start := time.Now()
		status, body, h := get(t, a.url("/socket.io/1/?t=1"))
		took := time.Since(start)
		if status != 503 || body != "handshake error: session store unavailable" || h.Get("Retry-After") == "" {
			t.Fatalf("handshake, %s: %d %q, Retry-After %q", what, status, body, h.Get("Retry-After"))
		}
		if took < hold-150*time.Millisecond || took > hold+time.Second {
			t.Fatalf("handshake, %s: 503 after %v, want about %v", what, took, hold)
		}
		t.Logf("%s: 503 after %v", what, took)
	}
	admitted := func(what string) {
		t.Helper()
		start := time.Now()
		deadline := start.Add(10 * time.Second)
		for {
			status, _, _ := get(t, a.url("/socket.io/1/?t=2"))
			if status == 200 {
				t.Logf("%s: admitted after %v", what, time.Since(start))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("handshake %s: %d", what, status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.redis.Kill(t)
	refused("Redis killed")
	c.redis.Restart(t)
	admitted("after Redis restarted")
	c.redis.Pause(t)
	refused("Redis paused")
	c.redis.Resume(t)
	admitted("after Redis resumed")
}

// The ?disconnect request ends the session even with no pending poll.
func TestDisconnectRequest(t *testing.T) {
	c := newCluster(t)
	a, b := c.gateway("a"), c.gateway("b")
	sid := handshake(t, a)
	get(t, a.url("/socket.io/1/xhr-polling/"+sid+"?t=1"))
	if status, body, _ := get(t, b.url("/socket.io/1/xhr-polling/"+sid+"/?disconnect=1")); status != 200 || body != "" {
		t.Fatalf("?disconnect: %d %q", status, body)
	}
	got := describe(c.signals(sid, 2))
	if !slices.Equal(got, []string{"connect", "disconnect client"}) {
		t.Fatalf("signals %q", got)
	}
}

// Handshake CORS, jsonp handshake, the origins allow-list and preflight.
func TestHandshakeForms(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a", "-origins", "good.example:80,*:8080")
	req, _ := http.NewRequest("GET", a.url("/socket.io/1/?t=1"), nil)
	req.Header.Set("Origin", "http://good.example")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://good.example" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("CORS handshake: %d %v", resp.StatusCode, resp.Header)
	}
	req.Header.Set("Origin", "http://evil.example")
	resp, _ = client.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("bad origin: %d", resp.StatusCode)
	}
	req.Header.Set("Origin", "http://any.example:8080")
	resp, _ = client.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("wildcard host origin: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", a.url("/socket.io/1/?t=1&jsonp=4"), nil)
	req.Header.Set("Origin", "http://good.example")
	status, body, hdr := doReq(t, req)
	if status != 200 || !strings.HasPrefix(body, `io.j[4]("`) || !strings.HasSuffix(body, `:60:60:websocket,htmlfile,xhr-polling,jsonp-polling");`) ||
		hdr.Get("Content-Type") != "application/javascript" {
		t.Fatalf("jsonp handshake: %d %q %v", status, body, hdr)
	}
	req, _ = http.NewRequest("OPTIONS", a.url("/socket.io/1/xhr-polling/x"), nil)
	req.Header.Set("Origin", "http://good.example")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	status, _, hdr = doReq(t, req)
	if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "http://good.example" || hdr.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", status, hdr)
	}
}

func doReq(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String(), resp.Header
}

// The Flash policy server answers at once with the policy for the origins,
// NUL-terminated; flashsocket is websocket at another path.
func TestFlashSocket(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a", "-transports", "websocket,flashsocket,xhr-polling", "-flash-policy-addr", "127.0.0.1:0",
		"-origins", "example.com:80,*:8080")
	addr := a.logged(regexp.MustCompile(`msg="flash policy server listening" addr=(\S+)`))
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("<policy-file-request/>\x00"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	policy, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<cross-domain-policy>", `<allow-access-from domain="example.com" to-ports="80"/>`,
		`<allow-access-from domain="*" to-ports="8080"/>`} {
		if !strings.Contains(policy, want) {
			t.Errorf("policy lacks %s:\n%s", want, policy)
		}
	}
	// Origins are restricted: the handshake needs an allowed Origin.
	req, _ := http.NewRequest("GET", a.url("/socket.io/1/?t=1"), nil)
	req.Header.Set("Origin", "http://example.com")
	status, body, _ := doReq(t, req)
	if status != 200 {
		t.Fatalf("handshake: %d %q", status, body)
	}
	sid, _, _ := strings.Cut(body, ":")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+a.addr+"/socket.io/1/flashsocket/"+sid, http.Header{"Origin": {"http://example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if m := readWS(t, ws); m != "1::" {
		t.Fatalf("flashsocket first frame %q", m)
	}
}

// Timer settings under which the official client drops healthy connections
// are refused at start, with a message that says why.
func TestInconsistentTimersRefused(t *testing.T) {
	out, err := exec.Command(binary(t, "gateway"), "-addr", "127.0.0.1:0", "-admin-addr", "",
		"-close-timeout", "3s", "-heartbeat-interval", "25s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "heartbeat interval 25s must be shorter than the close timeout") {
		t.Fatalf("gateway started with a heartbeat slower than the close timeout: %v\n%s", err, out)
	}
	out, err = exec.Command(binary(t, "gateway"), "-addr", "127.0.0.1:0", "-admin-addr", "",
		"-close-timeout", "10s", "-heartbeat-interval", "5s", "-polling-duration", "20s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "polling duration 20s must be shorter than the close timeout") {
		t.Fatalf("gateway started with polls longer than the close timeout: %v\n%s", err, out)
	}
}

// A websocket client that answers nothing is disconnected after the
// heartbeat timeout, with reason heartbeat_timeout, and so is one that
// stops in the middle of a frame; one that answers the heartbeats stays.
func TestHeartbeatTimeout(t *testing.T) {
	c := newCluster(t)
	a := c.gateway("a", "-heartbeat-interval", "200ms", "-heartbeat-timeout", "1s", "-close-timeout", "2s", "-polling-duration", "1s")
	silent, stalled, alive := handshake(t, a), handshake(t, a), handshake(t, a)
	wsSilent := dialWS(t, a, silent)
	wsStalled := dialWS(t, a, stalled)
	wsAlive := dialWS(t, a, alive)
	readWS(t, wsSilent)
	readWS(t, wsStalled)
	readWS(t, wsAlive)
	// Half of a masked text frame "2::": the header promises 3 bytes, 1 comes.
	if _, err := wsStalled.NetConn().Write([]byte{0x81, 0x83, 0, 0, 0, 0, '2'}); err != nil {
		t.Fatal(err)
	}
	stop := time.After(2500 * time.Millisecond)
	for _, ws := range []*websocket.Conn{wsSilent, wsStalled} {
		go func() { // these clients read (so TCP flows) but never write (more)
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
loop:
	for {
		select {
		case <-stop:
			break loop
		default:
		}
		if m := readFrame(t, wsAlive); m == "2::" {
			writeWS(t, wsAlive, "2::")
		}
	}
	if got := describe(c.signals(silent, 2)); !slices.Equal(got, []string{"connect", "disconnect heartbeat_timeout"}) {
		t.Fatalf("silent client: %q", got)
	}
	if got := describe(c.signals(stalled, 2)); !slices.Equal(got, []string{"connect", "disconnect heartbeat_timeout"}) {
		t.Fatalf("client stalled in a frame: %q", got)
	}
	if got := describe(c.signals(alive, 1)); !slices.Equal(got, []string{"connect"}) {
		t.Fatalf("client answering heartbeats: %q", got)
	}
}
