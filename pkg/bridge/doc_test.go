package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// docExample is one example of docs/bridge.md: a request, the answer, and
// the routes the commit sends to the gateway.
type docExample struct {
	name            string
	follows         bool // its signals come from the commit of the one before
	request, answer []byte
	routes          []string
}

var (
	exampleRE = regexp.MustCompile(`(?m)^<!-- example: (\S+)( follows)? -->$`)
	fenceRE   = regexp.MustCompile("(?s)```(json|text)\n(.*?)```")
)

func docExamples(t *testing.T) []docExample {
	doc, err := os.ReadFile("../../docs/bridge.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []docExample
	locs := exampleRE.FindAllSubmatchIndex(doc, -1)
	for i, l := range locs {
		end := len(doc)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		blocks := fenceRE.FindAllSubmatch(doc[l[1]:end], 3)
		name := string(doc[l[2]:l[3]])
		if len(blocks) != 3 || string(blocks[0][1]) != "json" || string(blocks[1][1]) != "json" || string(blocks[2][1]) != "text" {
			t.Fatalf("example %s: want a json request, a json answer and a text block of routes", name)
		}
		ex := docExample{name: name, follows: l[4] >= 0, request: blocks[0][2], answer: blocks[1][2]}
		for _, line := range strings.Split(strings.TrimSpace(string(blocks[2][2])), "\n") {
			if line != "" {
				ex.routes = append(ex.routes, line)
			}
		}
		out = append(out, ex)
	}
	if len(out) < 7 {
		t.Fatalf("found %d examples in docs/bridge.md", len(out))
	}
	return out
}

// Every example of docs/bridge.md, through the real bridge: the signals of
// its request, written to a real Redis stream for a session held by
// gateway gw1, make a worker running the bridge post exactly the request
// shown (but the ids) with a valid signature; the answer shown, from a
// test server, is committed (the signals acknowledged, nothing
// dead-lettered) and sends gw1 exactly the routes shown.
func TestDocExamples(t *testing.T) {
	examples := docExamples(t)
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := bus.NewKeys("", 0)
	store := session.New(rdb, session.Config{Keys: keys, Node: "gw1"})
	if err := store.Alive(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// gw1's route streams, one per partition.
	routes := make([]string, keys.Partitions())
	for p := range routes {
		routes[p] = keys.RouteStream(p, "gw1")
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: routes[p], ID: "0-1", Values: []any{bus.RouteField, "P\nopen\n"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	type exchange struct {
		got  []byte // the request's body
		sigE error  // Verify's verdict
	}
	exchanges := make(chan exchange, 10)
	answers := make(chan []byte, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := bridge.Verify([]byte("doc-secret"), r.Header.Get(bridge.HeaderTimestamp), r.Header.Get(bridge.HeaderSignature), body, time.Now(), 0)
		exchanges <- exchange{got: body, sigE: err}
		select {
		case a := <-answers:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(a)
		case <-time.After(10 * time.Second):
			http.Error(w, "no answer queued", http.StatusInternalServerError)
		}
	}))
	defer app.Close()

	// The sessions, as gw1 would have created them; their connect signals
	// (OpenStream writes one) are trimmed before the worker starts.
	for _, ex := range examples {
		if ex.follows {
			continue
		}
		var want bridge.Request
		if err := json.Unmarshal(ex.request, &want); err != nil {
			t.Fatalf("%s: request: %v", ex.name, err)
		}
		first := want.Signals[0]
		var hs session.Handshake
		if first.Handshake != nil {
			hs = *first.Handshake
		}
		if err := store.CreateWithID(ctx, first.SID, hs, string(first.Auth)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.OpenStream(ctx, first.SID, "websocket"); err != nil {
			t.Fatal(err)
		}
	}
	for p := range keys.Partitions() {
		if err := rdb.XTrimMaxLen(ctx, keys.Stream(p), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range routes {
		if err := rdb.XTrimMaxLen(ctx, key, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	w := worker.New(rdb, worker.Config{Keys: keys, Name: "doc-worker", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b, err := bridge.New(bridge.Config{Endpoint: app.URL, Secret: []byte("doc-secret")})
	if err != nil {
		t.Fatal(err)
	}
	b.Register(w)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	lastRoute := map[string]string{}
	for _, key := range routes {
		lastRoute[key] = "0-1"
	}
	for i, ex := range examples {
		// The commit of an example followed by another makes signals.
		makesMore := i+1 < len(examples) && examples[i+1].follows
		var want bridge.Request
		if err := json.Unmarshal(ex.request, &want); err != nil {
			t.Fatalf("%s: request: %v", ex.name, err)
		}
		// The signals, in one transaction (so one read, one request).
		_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			if ex.follows {
				return nil
			}
			for _, s := range want.Signals {
				sig := busSignal(t, s)
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(s.SID), Values: sig.Values()})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		answers <- ex.answer
		var x exchange
		select {
		case x = <-exchanges:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no request within 10s", ex.name)
		}
		if x.sigE != nil {
			t.Errorf("%s: signature refused: %v", ex.name, x.sigE)
		}
		var got bridge.Request
		if err := json.Unmarshal(x.got, &got); err != nil {
			t.Fatalf("%s: request %s: %v", ex.name, x.got, err)
		}
		if len(got.Signals) == len(want.Signals) {
			for i := range got.Signals {
				got.Signals[i].ID = want.Signals[i].ID // Redis assigned them
				if ex.follows {
					got.Signals[i].Time = want.Signals[i].Time
				}
			}
		}
		if !reflect.DeepEqual(normalize(t, got), normalize(t, want)) {
			t.Errorf("%s: the bridge sent\n%s\nthe doc shows\n%s", ex.name, indent(x.got), ex.request)
		}
		// The commit: every signal acknowledged, and the routes shown.
		var gotRoutes []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			// Settled before the read: every signal committed and every
			// effect on other partitions applied from the outboxes (a
			// broadcast's share of them comes a round trip after the
			// commit), so the read takes all their routes.
			settled := makesMore || pendingAll(t, rdb, keys) == 0 && outboxesEmpty(t, rdb, keys)
			gotRoutes = readRoutes(t, rdb, ownFirst(routes, keys.PartitionOf(want.Signals[0].SID)), lastRoute, gotRoutes)
			if settled && len(gotRoutes) >= len(ex.routes) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !reflect.DeepEqual(gotRoutes, ex.routes) && !(len(gotRoutes) == 0 && len(ex.routes) == 0) {
			t.Errorf("%s: routes\n%s\nthe doc shows\n%s", ex.name, strings.Join(gotRoutes, "\n"), strings.Join(ex.routes, "\n"))
		}
		if n := pendingAll(t, rdb, keys); n != 0 && !makesMore {
			t.Errorf("%s: %d signals still pending", ex.name, n)
		}
	}
	for p := range keys.Partitions() {
		if n, _ := rdb.XLen(ctx, keys.DeadLetter(p)).Result(); n != 0 {
			t.Errorf("partition %d: %d dead letters", p, n)
		}
	}
}

// busSignal is the stream signal a gateway writes for s.
func busSignal(t *testing.T, s bridge.Signal) bus.Signal {
	sig := bus.Signal{Kind: bus.Kind(s.Type), SID: s.SID, NS: s.Namespace, Gateway: "gw1", Time: time.UnixMilli(s.Time),
		Name: s.Name, Args: string(s.Args), Transport: s.Transport, Query: s.Query, Reason: bus.DisconnectReason(s.Reason)}
	switch s.Type {
	case bridge.TypeMessage:
		if err := json.Unmarshal(s.Data, &sig.Data); err != nil {
			t.Fatalf("message data: %v", err)
		}
	case bridge.TypeJSON:
		sig.Data = string(s.Data)
	}
	if s.AckID != nil {
		sig.MsgID, sig.HasID = *s.AckID, true
		sig.AckData = s.Type == bridge.TypeEvent
	}
	return sig
}

// normalize makes a request comparable: JSON values decoded generically.
func normalize(t *testing.T, r bridge.Request) any {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func indent(b []byte) string {
	var out bytes.Buffer
	_ = json.Indent(&out, b, "", "  ")
	return out.String()
}

// readRoutes appends the routes of streams after the ids in after,
// without timestamps, in the doc's notation, a stream after the other,
// read together (one transaction, so a commit is seen whole or not at
// all); a broadcast is listed once, where it first appears (the gateway
// gets it on the stream of each partition it holds streams of).
func readRoutes(t *testing.T, rdb *redis.Client, streams []string, after map[string]string, out []string) []string {
	ctx := context.Background()
	cmds := make([]*redis.XMessageSliceCmd, len(streams))
	_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, stream := range streams {
			cmds[i] = pipe.XRange(ctx, stream, "("+after[stream], "+")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for i, stream := range streams {
		for _, m := range cmds[i].Val() {
			after[stream] = m.ID
			msg, _ := m.Values[bus.RouteField].(string)
			read = appendRoutes(t, read, msg)
		}
	}
	for _, r := range read {
		if !strings.HasPrefix(r, "B ") || !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// ownFirst returns the route streams with partition p's first: the one of
// the example's session, whose routes the doc shows in order.
func ownFirst(streams []string, p int) []string {
	return append([]string{streams[p]}, slices.Delete(slices.Clone(streams), p, p+1)...)
}

// appendRoutes appends the routes of one route stream entry in the doc's
// notation.
func appendRoutes(t *testing.T, out []string, msg string) []string {
	err := bus.EachRoute(msg, func(one string) {
		r, err := bus.ParseRoute(one)
		if err != nil {
			t.Fatalf("route %q: %v", one, err)
		}
		switch r.Op {
		case bus.OpDeliver:
			out = append(out, fmt.Sprintf("D %s %s", r.SID, r.Packet))
		case bus.OpBroadcast:
			out = append(out, fmt.Sprintf("B %s %s %s %s", r.Arg, r.Room, r.SID, r.Packet))
		case bus.OpJoin, bus.OpLeave:
			out = append(out, fmt.Sprintf("%c %s %s %s", r.Op, r.SID, r.Arg, r.Room))
		case bus.OpClose:
			out = append(out, fmt.Sprintf("C %s %s %s", r.SID, r.Arg, r.Packet))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outboxesEmpty reports whether every partition's outbox is empty.
func outboxesEmpty(t *testing.T, rdb *redis.Client, keys bus.Keys) bool {
	for p := range keys.Partitions() {
		n, err := rdb.XLen(context.Background(), keys.Outbox(p)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return false
		}
	}
	return true
}

// pendingAll counts the signals delivered to the worker and not
// acknowledged, plus those not yet delivered, over every partition.
func pendingAll(t *testing.T, rdb *redis.Client, keys bus.Keys) int64 {
	var n int64
	for p := range keys.Partitions() {
		groups, err := rdb.XInfoGroups(context.Background(), keys.Stream(p)).Result()
		if err != nil {
			continue // no stream yet
		}
		for _, g := range groups {
			n += g.Pending + g.Lag
		}
	}
	return n
}

// The Python verifier docs/bridge.md shows accepts what the bridge signs
// now, and refuses another body, another secret and a stale timestamp.
func TestDocPythonVerifier(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is not installed (CI is set: nothing may skip)")
		}
		t.Skip("python3 is not installed")
	}
	doc, err := os.ReadFile("../../docs/bridge.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no python block in docs/bridge.md")
	}
	prog := string(m[1]) + `
import sys
secret, ts, sig = sys.argv[1].encode(), sys.argv[2], sys.argv[3]
print(verify(secret, ts, sig, sys.stdin.buffer.read()))
`
	body := []byte(`{"v":1,"signals":[{"type":"event","name":"é"}]}`)
	now := time.Now()
	run := func(secret string, ts time.Time, sig string, body []byte) string {
		cmd := exec.Command(py, "-c", prog, secret, strconv.FormatInt(ts.Unix(), 10), sig)
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	sig := bridge.Sign([]byte("k"), now, body)
	for _, c := range []struct {
		name, secret string
		ts           time.Time
		sig          string
		body         []byte
		want         string
	}{
		{"the bridge's signature", "k", now, sig, body, "True"},
		{"two values, one valid", "k", now, "v1=00, " + sig, body, "True"},
		{"another body", "k", now, sig, append(body, ' '), "False"},
		{"another secret", "k2", now, sig, body, "False"},
		{"stale", "k", now.Add(-6 * time.Minute), bridge.Sign([]byte("k"), now.Add(-6*time.Minute), body), body, "False"},
	} {
		if got := run(c.secret, c.ts, c.sig, c.body); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
