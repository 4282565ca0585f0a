package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/sioclient"
)

// chatBackend runs the chat app for a cluster: the Go chat (examples/chat)
// or django-realtime's chat rebuilt on the Django package
// (examples/django/chat), each beside the echo app, as in one worker.
type chatBackend struct {
	name  string
	start func(c *cluster)
	// stateGone reports whether the app forgot session sid (its
	// disconnect was handled).
	stateGone func(c *cluster, sid string) bool
}

var chatBackends = []chatBackend{
	{
		name:  "go",
		start: func(c *cluster) { c.worker("w1", "chat,echo") },
		stateGone: func(c *cluster, sid string) bool {
			return c.rdb.Exists(context.Background(), c.keys.Prefix()+"chat:s:"+sid).Val() == 0
		},
	},
	{
		// Served by gunicorn with two worker processes, the state in the
		// database they share: a session's signals reach either process.
		name: "django",
		start: func(c *cluster) {
			needDjango(c.t)
			endpoint := c.django("gunicorn", "")
			c.worker("w1", "http", "-http-endpoint", endpoint, "-http-secret", bridgeSecret)
		},
		stateGone: func(c *cluster, sid string) bool {
			return c.djangoChatMembers(sid) == 0
		},
	},
}

// djangoChatMembers counts the rows of session sid in the Django chat's
// database (the CHAT_DB that c.django made).
func (c *cluster) djangoChatMembers(sid string) int {
	c.t.Helper()
	var db string
	for _, e := range c.env {
		if v, ok := strings.CutPrefix(e, "CHAT_DB="); ok {
			db = v
		}
	}
	out, err := exec.Command(djangoPython, "-c",
		"import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("+
			"'select count(*) from chat_member where sid = ?', (sys.argv[2],)).fetchone()[0])", db, sid).CombinedOutput()
	if err != nil {
		c.t.Fatalf("reading %s: %v\n%s", db, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		c.t.Fatalf("reading %s: %q", db, out)
	}
	return n
}

// forChatBackends runs f as a subtest per chat backend.
func forChatBackends(t *testing.T, f func(t *testing.T, b chatBackend)) {
	for _, b := range chatBackends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// The chat app over two gateways and transports: nicknames, rooms, notices,
// the live user list, and the page and client script the gateway serves.
func TestChat(t *testing.T) {
	nodeScript(t, "echo-contract.js") // the client script comes from test/node_modules
	script, _ := filepath.Abs("../node_modules/socket.io-client/dist/socket.io.js")
	web, _ := filepath.Abs("../../web/chat")
	forChatBackends(t, func(t *testing.T, b chatBackend) {
		c := newCluster(t)
		g1 := c.gateway("a", "-static", web, "-client-script", script)
		g2 := c.gateway("b", "-static", web, "-client-script", script)
		b.start(c)
		chatSuite(t, g1, g2, script)
	})
}

// chatSuite checks the chat app through gateways g1 and g2 (g1 and g2
// serve web/chat and the client script).
func chatSuite(t *testing.T, g1, g2 *proc, script string) {
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
	if r := ack(ann, "join", "lobby"); r["error"] != "Choose a nickname first" {
		t.Fatalf("join without a nickname: %v", r)
	}
	if r := ack(ann, "nick", "  "); r["error"] == nil {
		t.Fatalf("blank nickname accepted: %v", r)
	}
	if r := ack(ann, "nick", 42); r["error"] == nil {
		t.Fatalf("a number as nickname accepted: %v", r)
	}
	if r := ack(ann, "nick", "ann", "key-ann"); r["nick"] != "ann" {
		t.Fatalf("nick: %v", r)
	}
	if r := ack(ann, "join", "lobby"); r["room"] != "lobby" || r["nick"] != "ann" {
		t.Fatalf("join: %v", r)
	}
	// Nicknames are unique per room, whatever their case.
	ack(bob, "nick", "ANN", "key-bob")
	if r := ack(bob, "join", "lobby"); r["error"] != "The nickname ANN is taken in lobby: choose another" {
		t.Fatalf("a taken nickname was accepted: %v", r)
	}
	ack(bob, "nick", "bob")
	if r := ack(bob, "join", "lobby"); strings.Join(toStrings(r["users"]), ",") != "ann,bob" {
		t.Fatalf("users on join: %v", r)
	}
	nextNotice(t, ctx, ann, "join", "bob joined")
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann","bob"]]` {
		t.Fatalf("users update: %s %v", u, err)
	}
	// Joining the room one is in again announces nothing.
	if r := ack(bob, "join", "lobby"); r["room"] != "lobby" {
		t.Fatalf("join again: %v", r)
	}
	// Renaming tells the room once and joins nothing: the next notice ann
	// gets after the rename is carol's join, not "robert joined".
	if r := ack(bob, "nick", "Ann"); r["error"] == nil {
		t.Fatalf("renamed to a taken nickname: %v", r)
	}
	if r := ack(bob, "nick", "robert"); r["nick"] != "robert" {
		t.Fatalf("rename: %v", r)
	}
	nextNotice(t, ctx, ann, "rename", "bob is now robert")
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann","robert"]]` {
		t.Fatalf("users after the rename: %s %v", u, err)
	}
	carol := dial(t, "websocket", urls(g2))
	if err := carol.Connect(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ack(carol, "nick", "bob") // free again since bob is robert now
	if r := ack(carol, "join", "lobby"); strings.Join(toStrings(r["users"]), ",") != "ann,bob,robert" {
		t.Fatalf("users on carol's join: %v", r)
	}
	nextNotice(t, ctx, ann, "join", "bob joined")

	// Lines: the room gets them with the sender's nickname, a time and the
	// client's message id; a second line under the same key and id is acked
	// and not said again.
	before := time.Now().UnixMilli()
	if r := ack(bob, "say", "hello </b> 😀", "m1"); r["ok"] != true || r["ts"] == nil {
		t.Fatalf("say: %v", r)
	}
	for _, x := range []*sioclient.Client{ann, bob} {
		said := nextSaid(t, ctx, x)
		if said["nick"] != "robert" || said["text"] != "hello </b> 😀" || said["id"] != "m1" {
			t.Fatalf("said: %v", said)
		}
		if ts, _ := said["ts"].(float64); int64(ts) < before-1000 || int64(ts) > time.Now().UnixMilli()+1000 {
			t.Fatalf("said at %v, not about now (%d)", said["ts"], before)
		}
	}
	if r := ack(bob, "say", "hello </b> 😀", "m1"); r["ok"] != true || r["duplicate"] != true {
		t.Fatalf("the same line again: %v", r)
	}
	ack(bob, "say", "second", "m2")
	if said := nextSaid(t, ctx, ann); said["text"] != "second" {
		t.Fatalf("a duplicate line was said again: %v", said)
	}
	for _, bad := range [][]any{{"   "}, {strings.Repeat("z", 2001)}, {7}, {"ok", 7}} {
		if r := ack(bob, "say", bad...); r["error"] == nil {
			t.Fatalf("say %v accepted: %v", bad, r)
		}
	}
	if r := ack(ann, "join", "bad\nroom"); r["error"] == nil {
		t.Fatalf("a room with a newline accepted: %v", r)
	}
	bob.Close()
	nextNotice(t, ctx, ann, "leave", "robert left")
	if u, err := ann.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann","bob"]]` {
		t.Fatalf("users after leave: %s %v", u, err)
	}
}

// nextNotice waits for cl's next notice and checks its kind, text and time.
func nextNotice(t *testing.T, ctx context.Context, cl *sioclient.Client, kind, text string) {
	t.Helper()
	raw, err := cl.NextEvent(ctx, "/chatroom", "notice")
	if err != nil {
		t.Fatalf("waiting for notice %q: %v", text, err)
	}
	var n []struct {
		Kind, Text string
		TS         int64
	}
	if err := json.Unmarshal(raw, &n); err != nil || len(n) != 1 {
		t.Fatalf("notice %s: %v", raw, err)
	}
	if n[0].Kind != kind || n[0].Text != text || time.Since(time.UnixMilli(n[0].TS)).Abs() > time.Minute {
		t.Fatalf("notice %s, want %s %q now", raw, kind, text)
	}
}

func nextSaid(t *testing.T, ctx context.Context, cl *sioclient.Client) map[string]any {
	t.Helper()
	raw, err := cl.NextEvent(ctx, "/chatroom", "said")
	if err != nil {
		t.Fatalf("waiting for said: %v", err)
	}
	var m []map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
		t.Fatalf("said %s: %v", raw, err)
	}
	return m[0]
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
	forChatBackends(t, func(t *testing.T, b chatBackend) {
		c := newCluster(t)
		g1 := c.gateway("a", "-close-timeout", "2s", "-polling-duration", "1s", "-heartbeat-interval", "1s")
		g2 := c.gateway("b", "-close-timeout", "2s", "-polling-duration", "1s", "-heartbeat-interval", "1s")
		b.start(c)
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
	})
}

// A page that reconnects gets a new session while its old one may still
// hold its nickname (a polling session lingers for the close timeout). The
// page sends the same key with its nickname: its new session takes the old
// one's place (the room hears "ann is back", not a leave and a join), and
// the old session is ended. Another page with another key is refused.
func TestChatReconnectReplacesOldSession(t *testing.T) {
	forChatBackends(t, func(t *testing.T, b chatBackend) {
		c := newCluster(t)
		g := c.gateway("a", "-close-timeout", "60s", "-polling-duration", "1s")
		b.start(c)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const ns = "/chatroom"
		enter := func(cl *sioclient.Client, nick, key string) map[string]any {
			t.Helper()
			if _, err := cl.EmitAck(ctx, ns, "nick", nick, key); err != nil {
				t.Fatal(err)
			}
			raw, err := cl.EmitAck(ctx, ns, "join", "lobby")
			if err != nil {
				t.Fatal(err)
			}
			var r []map[string]any
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			return r[0]
		}
		connect := func(transport string) *sioclient.Client {
			t.Helper()
			cl := dial(t, transport, urls(g))
			if err := cl.Connect(ctx, ns); err != nil {
				t.Fatal(err)
			}
			return cl
		}
		bob := connect("websocket")
		enter(bob, "bob", "key-bob")
		old := connect("xhr-polling")
		enter(old, "ann", "key-ann")
		nextNotice(t, ctx, bob, "join", "ann joined")
		old.Drop() // stops polling: the session lingers until the close timeout

		again := connect("websocket")
		if r := enter(again, "ann", "key-ann"); r["room"] != "lobby" || strings.Join(toStrings(r["users"]), ",") != "ann,bob" {
			t.Fatalf("rejoin with the same key: %v", r)
		}
		nextNotice(t, ctx, bob, "back", "ann is back")
		if u, err := bob.NextEvent(ctx, ns, "users"); err != nil || string(u) != `[["ann","bob"]]` {
			t.Fatalf("users after the rejoin: %s %v", u, err)
		}
		other := connect("websocket")
		if r := enter(other, "Ann", "key-other"); r["error"] != "The nickname Ann is taken in lobby: choose another" {
			t.Fatalf("another page took ann's nickname: %v", r)
		}
		// The old session was ended (its disconnect says nothing to the room):
		// the next notice bob gets is carol's join.
		deadline := time.Now().Add(10 * time.Second)
		for !b.stateGone(c, old.SID) {
			if time.Now().After(deadline) {
				t.Fatal("the replaced session was not ended")
			}
			time.Sleep(50 * time.Millisecond)
		}
		enter(other, "carol", "")
		nextNotice(t, ctx, bob, "join", "carol joined")

		// A nickname held by a session with no chat state left (a handler
		// interrupted between its steps) is free. (The Django chat keeps a
		// nickname and its session in one row: it has no such leftovers.)
		if b.name != "go" {
			return
		}
		if err := c.rdb.HSet(ctx, c.keys.Prefix()+"chat:names:lobby", "zed", "no-such-session").Err(); err != nil {
			t.Fatal(err)
		}
		zed := connect("websocket")
		if r := enter(zed, "Zed", "key-zed"); r["room"] != "lobby" {
			t.Fatalf("a leftover held the nickname: %v", r)
		}
	})
}
