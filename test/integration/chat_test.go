package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/sioclient"
)

// The chat app over two gateways and transports: nicknames, rooms, notices,
// the live user list, and the page and client script the gateway serves.
func TestChat(t *testing.T) {
	nodeScript(t, "echo-contract.js") // the client script comes from test/node_modules
	script, _ := filepath.Abs("../node_modules/socket.io-client/dist/socket.io.js")
	web, _ := filepath.Abs("../../web/chat")
	c := newCluster(t)
	g1 := c.gateway("a", "-static", web, "-client-script", script)
	g2 := c.gateway("b", "-static", web, "-client-script", script)
	c.worker("w1", "chat,echo")

	// The page and the client script.
	if status, body, _ := get(t, g1.url("/")); status != 200 || !strings.Contains(body, `<script src="/socket.io/socket.io.js">`) {
		t.Fatalf("chat page: %d", status)
	}
	want, _ := os.ReadFile(script)
	if status, body, hdr := get(t, g2.url("/socket.io/socket.io.js")); status != 200 || body != string(want) ||
		!strings.Contains(hdr.Get("Content-Type"), "javascript") {
		t.Fatalf("client script: %d %q", status, hdr.Get("Content-Type"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ann := dial(t, "websocket", urls(g1))
	bob := dial(t, "xhr-polling", urls(g2, g1))
	const ns = "/chatroom"
	for _, x := range []*sioclient.Client{ann, bob} {
		if err := x.Connect(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	ack := func(cl *sioclient.Client, name string, args ...any) map[string]any {
		t.Helper()
		raw, err := cl.EmitAck(ctx, ns, name, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out []map[string]any
		if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
			t.Fatalf("%s answered %s", name, raw)
		}
		return out[0]
	}
	if r := ack(ann, "join", "lobby"); r["error"] == nil {
		t.Fatalf("join without a nickname: %v", r)
	}
	if r := ack(ann, "nick", "  "); r["error"] == nil {
		t.Fatalf("blank nickname accepted: %v", r)
	}
	if r := ack(ann, "nick", "ann"); r["nick"] != "ann" {
		t.Fatalf("nick: %v", r)
	}
	if r := ack(ann, "join", "lobby"); r["room"] != "lobby" {
		t.Fatalf("join: %v", r)
	}
	ack(bob, "nick", "bob")
	if r := ack(bob, "join", "lobby"); strings.Join(toStrings(r["users"]), ",") != "ann,bob" {
		t.Fatalf("users on join: %v", r)
	}
	if n, err := ann.NextEvent(ctx, ns, "notice"); err != nil || !strings.Contains(string(n), "bob joined") {
		t.Fatalf("join notice: %s %v", n, err)
	}
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann","bob"]]` {
		t.Fatalf("users update: %s %v", u, err)
	}
	ack(bob, "say", "hello </b> 😀")
	for _, x := range []*sioclient.Client{ann, bob} {
		m, err := x.NextEvent(ctx, ns, "said")
		if err != nil || !strings.Contains(string(m), `"nick":"bob"`) || !strings.Contains(string(m), "hello \\u003c/b\\u003e 😀") {
			t.Fatalf("said: %s %v", m, err)
		}
	}
	bob.Close()
	if n, err := ann.NextEvent(ctx, ns, "notice"); err != nil || !strings.Contains(string(n), "bob left") {
		t.Fatalf("leave notice: %s %v", n, err)
	}
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann"]]` {
		t.Fatalf("users after leave: %s %v", u, err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// A polling user who stops polling (a closed tab) leaves the room when the
// close timeout ends the session.
func TestChatPollingUserTimesOut(t *testing.T) {
	c := newCluster(t)
	g1 := c.gateway("a", "-close-timeout", "2s", "-polling-duration", "1s", "-heartbeat-interval", "1s")
	g2 := c.gateway("b", "-close-timeout", "2s", "-polling-duration", "1s", "-heartbeat-interval", "1s")
	c.worker("w1", "chat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ann := dial(t, "websocket", urls(g1))
	bob := dial(t, "xhr-polling", urls(g2))
	const ns = "/chatroom"
	for i, x := range []*sioclient.Client{ann, bob} {
		if err := x.Connect(ctx, ns); err != nil {
			t.Fatal(err)
		}
		if _, err := x.EmitAck(ctx, ns, "nick", []string{"ann", "bob"}[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := x.EmitAck(ctx, ns, "join", "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann","bob"]]` {
		t.Fatalf("users: %s %v", u, err)
	}
	bob.Drop()
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann"]]` {
		t.Fatalf("users after bob timed out: %s %v", u, err)
	}
}
