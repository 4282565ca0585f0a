package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/pkg/protocol"
)

func urls(ps ...*proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, "http://"+p.addr)
	}
	return out
}

func dial(t *testing.T, transport string, urls []string) *sioclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sioclient.Dial(ctx, transport, urls...)
	if err != nil {
		t.Fatalf("dial %s: %v", transport, err)
	}
	t.Cleanup(c.Close)
	return c
}

func mustJSON(t *testing.T, raw json.RawMessage, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("bad JSON %s: %v", raw, err)
	}
	_ = json.Unmarshal([]byte(want), &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("got %s, want %s", raw, want)
	}
}

// The echo contract, item by item, with clients spread over three gateways
// and two workers, over websocket and xhr-polling, in both namespaces.
func TestEchoContract(t *testing.T) {
	// Parallel: each transport has a cluster of its own; its checks
	// wait up to 30 s.
	t.Parallel()
	for _, transport := range []string{"websocket", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			c := newCluster(t)
			gws := []*proc{c.gateway("a"), c.gateway("b"), c.gateway("c")}
			c.worker("w1", "echo")
			c.worker("w2", "echo")
			all := urls(gws...)
			// Each client starts on a different gateway; polling requests rotate.
			var clients []*sioclient.Client
			for i := 0; i < 3; i++ {
				rot := append(append([]string{}, all[i:]...), all[:i]...)
				clients = append(clients, dial(t, transport, rot))
			}
			for _, ns := range []string{"", "/chat"} {
				t.Run("ns="+ns, func(t *testing.T) { echoContract(t, ns, clients) })
			}
		})
	}
}

func echoContract(t *testing.T, ns string, cl []*sioclient.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, c := cl[0], cl[1], cl[2]
	for _, x := range cl {
		if ns != "" {
			if err := x.Connect(ctx, ns); err != nil {
				t.Fatal(err)
			}
		}
		welcome, err := x.NextEvent(ctx, ns, "welcome")
		if err != nil {
			t.Fatalf("welcome: %v", err)
		}
		mustJSON(t, welcome, fmt.Sprintf(`[{"sid":%q,"ns":%q}]`, x.SID, ns))
	}
	// echo with and without an ack; unicode that the reference loses.
	tricky := "😀 \u2028\u2029 </script> \"q\""
	got, err := a.EmitAck(ctx, ns, "echo", tricky, 42)
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, got, fmt.Sprintf(`[%q,42]`, tricky))
	if err := a.Emit(ctx, ns, "echo", "plain"); err != nil {
		t.Fatal(err)
	}
	got, err = a.NextEvent(ctx, ns, "echo")
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, got, `["plain"]`)
	// message and json message come back as sent.
	if err := a.Send(ctx, protocol.Packet{Type: protocol.Message, Endpoint: ns, Data: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, protocol.Packet{Type: protocol.JSON, Endpoint: ns, Data: []byte(`{"k":[1,2]}`)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ  protocol.PacketType
		data string
	}{{protocol.Message, "hello"}, {protocol.JSON, `{"k":[1,2]}`}} {
		for {
			p, err := a.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p.Type == protocol.Message || p.Type == protocol.JSON {
				if p.Type != want.typ || string(p.Data) != want.data || p.Endpoint != ns {
					t.Fatalf("got %s, want type %d %s", p, want.typ, want.data)
				}
				break
			}
		}
	}
	// rooms: a and b join; c's message to the room reaches both, not c.
	for _, x := range []*sioclient.Client{a, b} {
		if got, err := x.EmitAck(ctx, ns, "join", "room1"); err != nil || string(got) != "[true]" {
			t.Fatalf("join: %s %v", got, err)
		}
	}
	if got, err := a.EmitAck(ctx, ns, "to", "room1", map[string]int{"n": 1}); err != nil || string(got) != "[true]" {
		t.Fatalf("to: %s %v", got, err)
	}
	relay, err := b.NextEvent(ctx, ns, "relay")
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, relay, `[{"n":1}]`) // never the sender's sid
	// leave: b no longer gets relays; shout reaches everyone but the sender.
	if got, err := b.EmitAck(ctx, ns, "leave", "room1"); err != nil || string(got) != "[true]" {
		t.Fatalf("leave: %s %v", got, err)
	}
	if got, err := c.EmitAck(ctx, ns, "shout", "hey"); err != nil || string(got) != "[true]" {
		t.Fatalf("shout: %s %v", got, err)
	}
	for _, x := range []*sioclient.Client{a, b} {
		got, err := x.NextEvent(ctx, ns, "shout")
		if err != nil {
			t.Fatal(err)
		}
		mustJSON(t, got, `["hey"]`)
	}
	if got, err := c.EmitAck(ctx, ns, "to", "room1", "only-a"); err != nil || string(got) != "[true]" {
		t.Fatalf("to: %s %v", got, err)
	}
	if relay, err := a.NextEvent(ctx, ns, "relay"); err != nil || !strings.Contains(string(relay), "only-a") {
		t.Fatalf("a's relay: %s %v", relay, err)
	}
	// whoami and count.
	if got, err := b.EmitAck(ctx, ns, "whoami"); err != nil {
		t.Fatal(err)
	} else {
		mustJSON(t, got, fmt.Sprintf("[%q]", b.SID))
	}
	if got, err := b.EmitAck(ctx, ns, "count"); err != nil || string(got) != "[3]" {
		t.Fatalf("count: %s %v", got, err)
	}
	// ask: the server asks the client, which answers; the answer comes back.
	if err := c.Emit(ctx, ns, "ask", "q?"); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Type == protocol.Event && p.HasID && p.AckData && p.Endpoint == ns {
			if name, args, _ := protocol.ParseEvent(p.Data); name != "question" || string(args) != `["q?"]` {
				t.Fatalf("question %s", p)
			}
			if err := c.Ack(ctx, ns, p.ID, "a!"); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got, err := c.NextEvent(ctx, ns, "answer"); err != nil {
		t.Fatal(err)
	} else {
		mustJSON(t, got, `["a!"]`)
	}
	// bye: the server disconnects the socket.
	if ns == "/chat" {
		if err := a.Emit(ctx, ns, "bye"); err != nil {
			t.Fatal(err)
		}
		for {
			p, err := a.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p.Type == protocol.Disconnect && p.Endpoint == ns {
				break
			}
		}
		if got, err := b.EmitAck(ctx, ns, "count"); err != nil || string(got) != "[2]" {
			t.Fatalf("count after bye: %s %v", got, err)
		}
	}
}

// bye in the default namespace ends the session: 0:: and no reconnect.
func TestServerDisconnect(t *testing.T) {
	for _, transport := range []string{"websocket", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			c := newCluster(t)
			g1, g2 := c.gateway("a"), c.gateway("b")
			c.worker("w1", "echo")
			cl := dial(t, transport, urls(g1, g2))
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
				t.Fatal(err)
			}
			if err := cl.Emit(ctx, "", "bye"); err != nil {
				t.Fatal(err)
			}
			for {
				p, err := cl.Next(ctx)
				if err != nil {
					t.Fatalf("no 0:: before the end: %v", err)
				}
				if p.Type == protocol.Disconnect && p.Endpoint == "" {
					break
				}
			}
			// Workers trim handled entries, so only the tail is certain.
			waitUntil(t, "the disconnect signal", 10*time.Second, func() error {
				got := describe(c.signals(cl.SID, 1))
				if len(got) == 0 || got[len(got)-1] != "disconnect server" {
					return fmt.Errorf("signals %q", got)
				}
				if slices.Index(got, "disconnect server") != len(got)-1 {
					t.Fatalf("two disconnects: %q", got)
				}
				return nil
			})
		})
	}
}

// Several sessions each emit a numbered sequence while workers join and
// one is killed: every session's echoes come back complete and in order.
func TestOrderAcrossWorkersAndKill(t *testing.T) {
	// Parallel: a cluster of its own; a slower stream only puts the
	// rebalance and the kill further inside it.
	t.Parallel()
	c := newCluster(t)
	g1, g2 := c.gateway("a"), c.gateway("b")
	w1 := c.worker("w1", "echo")
	c.worker("w2", "echo")
	const sessions, perSession = 6, 150
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := 0; i < sessions; i++ {
		transport := "websocket"
		if i%2 == 1 {
			transport = "xhr-polling"
		}
		cl := dial(t, transport, urls(g1, g2))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Acks come back in the order the events were sent.
			for n := 1; n <= perSession; n++ {
				got, err := cl.EmitAck(ctx, "", "echo", n)
				if err != nil {
					errs <- fmt.Errorf("%s #%d: %v", cl.SID, n, err)
					return
				}
				if string(got) != fmt.Sprintf("[%d]", n) {
					errs <- fmt.Errorf("%s #%d: ack %s", cl.SID, n, got)
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	c.worker("w3", "echo") // a rebalance mid-stream
	time.Sleep(300 * time.Millisecond)
	w1.kill() // and a crash
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// With -authorize, handshakes wait for the workers' OnAuthorize hook: allowed
// ones keep the hook's data with the session, denied ones get 403, a failing
// hook 500; without an answer, fail-closed refuses and fail-open admits.
func TestHandshakeAuthorization(t *testing.T) {
	c := newCluster(t)
	g := c.gateway("a", "-authorize", "-authorize-timeout", "1s")
	open := c.gateway("b", "-authorize", "-authorize-timeout", "300ms", "-authorize-fail-open")
	// No worker yet: fail-closed refuses, fail-open admits.
	if status, body, _ := get(t, g.url("/socket.io/1/?t=1")); status != 500 || body != "handshake error" {
		t.Fatalf("fail-closed without workers: %d %q", status, body)
	}
	if status, _, _ := get(t, open.url("/socket.io/1/?t=1")); status != 200 {
		t.Fatalf("fail-open without workers: %d", status)
	}
	c.worker("w1", "echo")
	waitUntil(t, "the worker answers authorizations", 10*time.Second, func() error {
		if status, _, _ := get(t, g.url("/socket.io/1/?t=2&user=warmup")); status != 200 {
			return fmt.Errorf("handshake %d", status)
		}
		return nil
	})
	if status, body, _ := get(t, g.url("/socket.io/1/?t=3&deny=1")); status != 403 || body != "handshake unauthorized" {
		t.Fatalf("denied: %d %q", status, body)
	}
	if _, body, _ := get(t, g.url("/socket.io/1/?t=3&deny=1&jsonp=2")); body != `io.j[2](new Error("handshake unauthorized"));` {
		t.Fatalf("denied jsonp: %q", body)
	}
	if status, body, _ := get(t, g.url("/socket.io/1/?t=4&fail=1")); status != 500 || body != "handshake error" {
		t.Fatalf("hook failure: %d %q", status, body)
	}
	_, body, _ := get(t, g.url("/socket.io/1/?t=5&user=ann"))
	sid, _, _ := strings.Cut(body, ":")
	ws := dialWS(t, g, sid)
	readWS(t, ws)
	writeWS(t, ws, `5:1+::{"name":"authdata"}`)
	for {
		m := readWS(t, ws)
		if strings.HasPrefix(m, "6:::1+") {
			if m != `6:::1+[{"user":"ann"}]` {
				t.Fatalf("auth data: %q", m)
			}
			break
		}
	}
}
