package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// faultApp answers each request with what answer returns for it.
type faultApp struct {
	mu     sync.Mutex
	answer func(req bridge.Request) (status int, body string, delay time.Duration)
	reqs   []bridge.Request
}

func (a *faultApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req bridge.Request
	_ = json.Unmarshal(body, &req)
	a.mu.Lock()
	a.reqs = append(a.reqs, req)
	f := a.answer
	a.mu.Unlock()
	status, out, delay := f(req)
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}

func (a *faultApp) set(f func(req bridge.Request) (int, string, time.Duration)) {
	a.mu.Lock()
	a.answer, a.reqs = f, nil
	a.mu.Unlock()
}

// sent returns, per request since set, the "name/attempt" of its signals.
func (a *faultApp) sent() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out [][]string
	for _, r := range a.reqs {
		var one []string
		for _, s := range r.Signals {
			one = append(one, fmt.Sprintf("%s/%d", s.Name, s.Attempt))
		}
		out = append(out, one)
	}
	return out
}

func emitResult(name string) string {
	return fmt.Sprintf(`{"effects":[{"op":"emit","name":%q}]}`, name)
}

// The failure paths through a real worker and Redis: a result with
// "error" commits the results before it and sends the rest again; fewer
// results than signals send the rest again; a timeout is retried; answers
// that cannot be applied (another version, an unknown op) are retried and
// then dead-lettered, committing nothing. Each effect reaches the gateway
// once, and the metrics count each case.
func TestAnswerFaults(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := bus.NewKeys("", 0)
	store := session.New(rdb, session.Config{Keys: keys, Node: "gw1"})
	if err := store.Alive(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// gw1's route stream exists (a gateway opens it; routes go only to open ones).
	const sid = "Sfault0000000000000001"
	routes := keys.RouteStream(keys.PartitionOf(sid), "gw1") // the routes about sid
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: routes, ID: "0-1", Values: []any{bus.RouteField, "P\nopen\n"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateWithID(ctx, sid, session.Handshake{Address: "127.0.0.1:1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.OpenStream(ctx, sid, "websocket"); err != nil {
		t.Fatal(err)
	}
	stream := keys.StreamFor(sid)
	for _, k := range []string{stream, routes} {
		if err := rdb.XTrimMaxLen(ctx, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	app := &faultApp{}
	hs := httptest.NewServer(app)
	defer hs.Close()
	m := bridge.NewMetrics(nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := worker.New(rdb, worker.Config{Keys: keys, Name: "w-fault", MaxAttempts: 2, RetryBackoff: 50 * time.Millisecond, Logger: quiet})
	b, err := bridge.New(bridge.Config{Endpoint: hs.URL, Secret: []byte("x"), Timeout: 300 * time.Millisecond, Metrics: m, Logger: quiet})
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

	lastRoute := map[string]string{routes: "0-1"}
	emit := func(names ...string) {
		t.Helper()
		_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, n := range names {
				s := bus.Signal{Kind: bus.KindEvent, SID: sid, Gateway: "gw1", Time: time.Now(), Name: n, Args: "[]"}
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: s.Values()})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// settle waits until the app had requests and nothing is pending
	// (every signal committed or dead-lettered), and returns the routes
	// since the last call.
	settle := func() []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(app.sent()) == 0 || pendingAll(t, rdb, keys) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("signals still pending after 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // nothing more may come
		return readRoutes(t, rdb, []string{routes}, lastRoute, nil)
	}
	route := func(name string) string {
		return fmt.Sprintf(`D %s 5:::{"name":%q}`, sid, name)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}

	// An "error" result in the middle.
	failed := false
	app.set(func(req bridge.Request) (int, string, time.Duration) {
		var rs []string
		for _, s := range req.Signals {
			if s.Name == "e2" && !failed {
				failed = true
				rs = append(rs, `{"error":"not now"}`)
				continue
			}
			rs = append(rs, emitResult(s.Name+"-done"))
		}
		return 200, fmt.Sprintf(`{"v":1,"results":[%s]}`, join(rs)), 0
	})
	emit("e1", "e2", "e3")
	check("error result: routes", settle(), []string{route("e1-done"), route("e2-done"), route("e3-done")})
	check("error result: requests", app.sent(), [][]string{{"e1/1", "e2/1", "e3/1"}, {"e2/2", "e3/2"}})

	// Fewer results than signals.
	app.set(func(req bridge.Request) (int, string, time.Duration) {
		return 200, fmt.Sprintf(`{"v":1,"results":[%s]}`, emitResult(req.Signals[0].Name+"-done")), 0
	})
	emit("f1", "f2")
	check("fewer results: routes", settle(), []string{route("f1-done"), route("f2-done")})
	check("fewer results: requests", app.sent(), [][]string{{"f1/1", "f2/1"}, {"f2/2"}})

	// A timeout, then an answer.
	slow := true
	app.set(func(req bridge.Request) (int, string, time.Duration) {
		d := time.Duration(0)
		if slow {
			slow, d = false, time.Second
		}
		return 200, fmt.Sprintf(`{"v":1,"results":[%s]}`, emitResult("h1-done")), d
	})
	emit("h1")
	check("timeout: routes", settle(), []string{route("h1-done")})
	check("timeout: requests", app.sent(), [][]string{{"h1/1"}, {"h1/2"}})
	check("timeout: counted", testutil.ToFloat64(m.Requests.WithLabelValues("timeout")), 1.0)

	// Answers that cannot be applied: dead-lettered after 2 attempts, and
	// nothing of them committed (the emit before the bad op included).
	n := 0
	app.set(func(req bridge.Request) (int, string, time.Duration) {
		n++
		if n == 1 {
			return 200, `{"v":2,"results":[{}]}`, 0
		}
		return 200, `{"v":1,"results":[{"effects":[{"op":"emit","name":"x"},{"op":"explode"}]}]}`, 0
	})
	emit("g1")
	check("bad answers: routes", settle(), []string(nil))
	check("bad answers: requests", app.sent(), [][]string{{"g1/1"}, {"g1/2"}})
	dead, err := rdb.XLen(ctx, keys.DeadLetter(bus.Partition(sid, keys.Partitions()))).Result()
	check("bad answers: dead letters", dead, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	check("signals with an error", testutil.ToFloat64(m.Signals.WithLabelValues("event", "error")), 2.0) // e2, g1's op
	check("requests answered 200", testutil.ToFloat64(m.Requests.WithLabelValues("200")), 7.0)
	check("retries", testutil.ToFloat64(m.Retries), 5.0) // e2, e3, f2, h1, g1

	// notAttempted has the app answer status (with body) to the first 4
	// requests, then apply signal name: a status that reads none of the
	// signals, so they are tried again past MaxAttempts (2), not
	// dead-lettered, and applied once the app takes them.
	notAttempted := func(status int, body, name string) {
		t.Helper()
		refusals := 0
		app.set(func(req bridge.Request) (int, string, time.Duration) {
			if refusals < 4 {
				refusals++
				return status, body, 0
			}
			return 200, fmt.Sprintf(`{"v":1,"results":[%s]}`, emitResult(name+"-done")), 0
		})
		emit(name)
		what := fmt.Sprint(status)
		check(what+": routes", settle(), []string{route(name + "-done")})
		check(what+": requests", app.sent(), [][]string{{name + "/1"}, {name + "/2"}, {name + "/3"}, {name + "/4"}, {name + "/5"}})
		dead, _ := rdb.XLen(ctx, keys.DeadLetter(bus.Partition(sid, keys.Partitions()))).Result()
		check(what+": dead letters", dead, int64(1)) // g1's, from before
	}
	// A 401: the app refuses the signature (its secret changed on a deploy).
	notAttempted(401, "bad signature\n", "k1")
	check("requests answered 401", testutil.ToFloat64(m.Requests.WithLabelValues("401")), 4.0)
	// A 502: a proxy in front of the app cannot reach it, and no request is
	// answered 2xx meanwhile, so the app is taken as down.
	notAttempted(502, "<html>Bad Gateway</html>", "u1")

	// An effect a cluster limit refuses (a room name over
	// session.DefaultMaxRoomBytes, from the client's input): committed with the
	// effects before it, the rest not applied, the client's data ack
	// answered bridge.RejectedAck; counted rejected, not retried.
	long := strings.Repeat("r", session.DefaultMaxRoomBytes+1)
	app.set(func(req bridge.Request) (int, string, time.Duration) {
		return 200, fmt.Sprintf(`{"v":1,"results":[{"effects":[{"op":"emit","name":"before"},{"op":"join","room":%q},{"op":"emit","name":"after"}]}]}`, long), 0
	})
	acked := bus.Signal{Kind: bus.KindEvent, SID: sid, Gateway: "gw1", Time: time.Now(), Name: "r1", Args: "[]", MsgID: 7, HasID: true, AckData: true}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: acked.Values()}).Err(); err != nil {
		t.Fatal(err)
	}
	check("rejected effect: routes", settle(), []string{route("before"), fmt.Sprintf("D %s 6:::7+%s", sid, bridge.RejectedAck)})
	check("rejected effect: requests", app.sent(), [][]string{{"r1/1"}})
	check("rejected effect: counted", testutil.ToFloat64(m.Signals.WithLabelValues("event", "rejected")), 1.0)

	// The app down (its connection refused), then back on its address:
	// the signal waits, past MaxAttempts, and is applied once.
	app.set(func(req bridge.Request) (int, string, time.Duration) {
		return 200, fmt.Sprintf(`{"v":1,"results":[%s]}`, emitResult("m1-done")), 0
	})
	addr := hs.Listener.Addr().String()
	hs.Close()
	emit("m1")
	time.Sleep(400 * time.Millisecond) // refused tries: 50, 100, 200 ms apart
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the app's address %s could not be listened on again: %v", addr, err)
	}
	back := httptest.NewUnstartedServer(app)
	back.Listener = l
	back.Start()
	defer back.Close()
	check("app down: routes", settle(), []string{route("m1-done")})
	if sent := app.sent(); len(sent) != 1 || len(sent[0]) != 1 || sent[0][0] == "m1/1" {
		t.Errorf("app down: requests %v, want one, after refused tries", sent)
	}
	dead, _ = rdb.XLen(ctx, keys.DeadLetter(bus.Partition(sid, keys.Partitions()))).Result()
	check("app down: dead letters", dead, int64(1))
}

func join(rs []string) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += ","
		}
		out += r
	}
	return out
}
