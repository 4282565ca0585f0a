package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

const testKey = "s3cret-key"

// env is a real Redis, a session store acting as a gateway, and the API
// served over HTTP with a key.
type env struct {
	t       *testing.T
	redis   *testredis.Server
	store   *session.Store
	keys    bus.Keys
	srv     *httptest.Server
	metrics *Metrics
	logs    *bytes.Buffer
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	r := testredis.Start(t)
	rdb := r.Client(t)
	keys := bus.NewKeys("", 4)
	logs := &bytes.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	m := NewMetrics(prometheus.NewRegistry())
	s := New(worker.NewEmitter(rdb, worker.EmitterConfig{Keys: keys}), cfg, m)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, redis: r, keys: keys, store: session.New(rdb, session.Config{Keys: keys, Node: "gw"}),
		srv: srv, metrics: m, logs: logs}
}

// session creates a polling session connected to the default namespace.
func (e *env) session() string {
	e.t.Helper()
	ctx := context.Background()
	sid, err := e.store.Create(ctx, session.Handshake{Query: "t=1"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Poll(ctx, sid, "xhr-polling", "p", "1", false); err != nil {
		e.t.Fatal(err)
	}
	return sid
}

// mailbox returns the packets waiting for a polling session (after 1::).
func (e *env) mailbox(sid string) []string {
	e.t.Helper()
	rdb := e.redis.Client(e.t)
	out, err := rdb.LRange(context.Background(), e.keys.Mailbox(sid), 1, -1).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// call performs a request with key ("" none) and returns status and the
// decoded JSON answer.
func (e *env) call(method, path, key, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: answer %q is not a JSON object: %v", method, path, raw, err)
	}
	return resp.StatusCode, out
}

// Every error answer: its status, reason, the field when one is at fault,
// and its count in realtime_api_errors_total; the actions that succeed
// change the session as the Emitter would.
func TestAPIErrorsAndActions(t *testing.T) {
	e := newEnv(t, Config{Key: testKey, MaxBodyBytes: 200})
	a := e.session()
	big := `{"event":"x","args":["` + strings.Repeat("a", 300) + `"]}`
	for _, tc := range []struct {
		name, method, path, key, body string
		status                        int
		reason, field                 string
	}{
		{"no key", "POST", "/v1/emit", "", `{"event":"x"}`, 401, "unauthorized", ""},
		{"wrong key", "POST", "/v1/emit", "wrong", `{"event":"x"}`, 401, "unauthorized", ""},
		{"wrong key of the same length", "GET", "/v1/count", strings.Repeat("x", len(testKey)), "", 401, "unauthorized", ""},
		{"unknown path", "GET", "/v1/nothing", testKey, "", 404, "not_found", ""},
		{"wrong method", "GET", "/v1/emit", testKey, "", 405, "method_not_allowed", ""},
		{"bad JSON", "POST", "/v1/emit", testKey, `{"event":`, 400, "bad_json", ""},
		{"two values", "POST", "/v1/emit", testKey, `{"event":"x"} {}`, 400, "bad_json", ""},
		{"unknown field", "POST", "/v1/emit", testKey, `{"event":"x","rom":"r"}`, 400, "bad_field", "rom"},
		{"wrong type", "POST", "/v1/emit", testKey, `{"event":7}`, 400, "bad_field", "event"},
		{"no event", "POST", "/v1/emit", testKey, `{"args":[1]}`, 400, "bad_field", "event"},
		{"args not an array", "POST", "/v1/emit", testKey, `{"event":"x","args":{"a":1}}`, 400, "bad_field", "args"},
		{"socket and room", "POST", "/v1/emit", testKey, `{"event":"x","socket":"` + a + `","room":"r"}`, 400, "bad_field", "room"},
		{"socket and except", "POST", "/v1/send", testKey, `{"message":"m","socket":"` + a + `","except":"` + a + `"}`, 400, "bad_field", "except"},
		{"bad namespace", "POST", "/v1/send", testKey, `{"message":"m","namespace":"chat"}`, 400, "bad_field", "namespace"},
		{"bad socket id", "POST", "/v1/disconnect", testKey, `{"socket":"a b"}`, 400, "bad_field", "socket"},
		{"room with newline", "POST", "/v1/join", testKey, `{"socket":"` + a + `","room":"a\nb"}`, 400, "bad_field", "room"},
		{"join without room", "POST", "/v1/join", testKey, `{"socket":"` + a + `"}`, 400, "bad_field", "room"},
		{"no message", "POST", "/v1/send", testKey, `{}`, 400, "bad_field", "message"},
		{"no data", "POST", "/v1/json", testKey, `{}`, 400, "bad_field", "data"},
		{"bad limit", "GET", "/v1/sockets?limit=0", testKey, "", 400, "bad_field", "limit"},
		{"bad cursor", "GET", "/v1/sockets?cursor=x", testKey, "", 400, "bad_field", "cursor"},
		{"a cursor past the partitions", "GET", "/v1/sockets?cursor=18446744073709551615", testKey, "", 400, "bad_field", "cursor"},
		{"a rooms cursor past the nodes", "GET", "/v1/rooms?cursor=18446744073709551615", testKey, "", 400, "bad_field", "cursor"},
		{"unknown parameter", "GET", "/v1/count?rom=r", testKey, "", 400, "bad_field", "rom"},
		{"body too large", "POST", "/v1/emit", testKey, big, 413, "body_too_large", ""},
		{"unknown socket", "POST", "/v1/emit", testKey, `{"event":"x","socket":"nosuchsocket"}`, 404, "unknown_socket", ""},
		{"socket not in the namespace", "POST", "/v1/disconnect", testKey, `{"socket":"` + a + `","namespace":"/chat"}`, 404, "unknown_socket", ""},
		{"rooms of an unknown socket", "GET", "/v1/rooms?socket=nosuchsocket", testKey, "", 404, "unknown_socket", ""},
		{"rooms of a socket with a cursor", "GET", "/v1/rooms?socket=" + a + "&cursor=5", testKey, "", 400, "bad_field", "cursor"},
		{"rooms with a bad limit", "GET", "/v1/rooms?limit=x", testKey, "", 400, "bad_field", "limit"},
	} {
		before := testutil.ToFloat64(e.metrics.Errors.WithLabelValues(tc.reason))
		status, got := e.call(tc.method, tc.path, tc.key, tc.body)
		if status != tc.status || got["error"] != tc.reason {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, got, tc.status, tc.reason)
			continue
		}
		if tc.field != "" && got["field"] != tc.field {
			t.Errorf("%s: field %v, want %s", tc.name, got["field"], tc.field)
		}
		if msg, _ := got["message"].(string); msg == "" {
			t.Errorf("%s: no message: %v", tc.name, got)
		}
		if after := testutil.ToFloat64(e.metrics.Errors.WithLabelValues(tc.reason)); after != before+1 {
			t.Errorf("%s: realtime_api_errors_total{reason=%q} went from %v to %v", tc.name, tc.reason, before, after)
		}
	}
	if !strings.Contains(e.logs.String(), `msg="api request refused" reason=unauthorized`) {
		t.Errorf("no log line for the refusals:\n%s", e.logs.String())
	}
	// Three 401s above, one log line for them within errorLogEvery.
	if n := strings.Count(e.logs.String(), "reason=unauthorized"); n != 1 {
		t.Errorf("%d log lines for unauthorized, want 1 (rate-limited)", n)
	}
	if got := e.mailbox(a); len(got) != 0 {
		t.Fatalf("the refused requests reached the session: %q", got)
	}

	b := e.session()
	for _, body := range []struct{ path, body string }{
		{"/v1/join", `{"socket":"` + a + `","room":"r"}`},
		{"/v1/emit", `{"socket":"` + a + `","event":"hi","args":[1,"two"]}`},
		{"/v1/send", `{"room":"r","message":"to r"}`},
		{"/v1/json", `{"except":"` + a + `","data":{"k":[true]}}`},
	} {
		if status, got := e.call("POST", body.path, testKey, body.body); status != 200 || got["ok"] != true {
			t.Fatalf("%s %s: %d %v", body.path, body.body, status, got)
		}
	}
	if got, want := e.mailbox(a), []string{`5:::{"name":"hi","args":[1,"two"]}`, "3:::to r"}; !slices.Equal(got, want) {
		t.Errorf("mailbox of a = %q, want %q", got, want)
	}
	if got, want := e.mailbox(b), []string{`4:::{"k":[true]}`}; !slices.Equal(got, want) {
		t.Errorf("mailbox of b = %q, want %q", got, want)
	}
	if status, got := e.call("GET", "/v1/rooms?socket="+a, testKey, ""); status != 200 || !slices.Equal(toStrings(got["rooms"]), []string{"r"}) {
		t.Errorf("rooms of a: %d %v", status, got)
	}
	if status, got := e.call("GET", "/v1/rooms", testKey, ""); status != 200 || !slices.Equal(toStrings(got["rooms"]), []string{"r"}) || got["cursor"] != "" {
		t.Errorf("rooms of the namespace: %d %v", status, got)
	}
	if status, got := e.call("GET", "/v1/rooms?namespace=/chat", testKey, ""); status != 200 || len(toStrings(got["rooms"])) != 0 {
		t.Errorf("rooms of /chat: %d %v", status, got)
	}
	if status, got := e.call("GET", "/v1/count?room=r", testKey, ""); status != 200 || got["count"] != 1.0 {
		t.Errorf("count of r: %d %v", status, got)
	}
	if status, got := e.call("POST", "/v1/leave", testKey, `{"socket":"`+a+`","room":"r"}`); status != 200 || got["ok"] != true {
		t.Errorf("leave: %d %v", status, got)
	}
	if status, got := e.call("GET", "/v1/count?room=r", testKey, ""); status != 200 || got["count"] != 0.0 {
		t.Errorf("count of r after leave: %d %v", status, got)
	}
	if status, got := e.call("POST", "/v1/disconnect", testKey, `{"socket":"`+b+`"}`); status != 200 || got["ok"] != true {
		t.Errorf("disconnect: %d %v", status, got)
	}
	if status, got := e.call("GET", "/v1/count", testKey, ""); status != 200 || got["count"] != 1.0 {
		t.Errorf("count after the disconnect: %d %v", status, got)
	}

	// Redis gone: 503 redis_unavailable, counted.
	e.redis.Kill(t)
	for _, path := range []string{"/v1/count", "/v1/sockets"} {
		if status, got := e.call("GET", path, testKey, ""); status != 503 || got["error"] != "redis_unavailable" {
			t.Errorf("%s without Redis: %d %v", path, status, got)
		}
	}
	if status, got := e.call("POST", "/v1/emit", testKey, `{"event":"x"}`); status != 503 || got["error"] != "redis_unavailable" {
		t.Errorf("emit without Redis: %d %v", status, got)
	}
	if n := testutil.ToFloat64(e.metrics.Errors.WithLabelValues("redis_unavailable")); n != 3 {
		t.Errorf("realtime_api_errors_total{reason=redis_unavailable} = %v, want 3", n)
	}
}

// GET /v1/sockets pages through every socket with its cursor.
func TestAPISocketsPages(t *testing.T) {
	e := newEnv(t, Config{})
	var want []string
	for range 300 {
		want = append(want, e.session())
	}
	slices.Sort(want)
	var got []string
	cursor, pages := "", 0
	for {
		status, page := e.call("GET", "/v1/sockets?limit=50&cursor="+cursor, "", "")
		if status != 200 {
			t.Fatalf("page %d: %d %v", pages, status, page)
		}
		got = append(got, toStrings(page["sockets"])...)
		pages++
		cursor, _ = page["cursor"].(string)
		if cursor == "" {
			break
		}
		if pages > 100 {
			t.Fatal("no last page")
		}
	}
	slices.Sort(got)
	if got = slices.Compact(got); !slices.Equal(got, want) {
		t.Fatalf("%d sockets over %d pages, want %d", len(got), pages, len(want))
	}
	if pages < 2 {
		t.Errorf("300 sockets came in %d page with limit 50", pages)
	}
}

// Without a key the API may listen only on loopback.
func TestCheckListen(t *testing.T) {
	for addr, want := range map[string]error{
		"127.0.0.1:8200": nil, "localhost:8200": nil, "[::1]:8200": nil, "127.0.0.2:0": nil,
		":8200": ErrNoKey, "0.0.0.0:8200": ErrNoKey, "10.1.2.3:8200": ErrNoKey, "[::]:8200": ErrNoKey, "example.com:80": ErrNoKey,
	} {
		if err := CheckListen(addr, ""); !errors.Is(err, want) {
			t.Errorf("CheckListen(%q, no key) = %v, want %v", addr, err, want)
		}
		if err := CheckListen(addr, "k"); err != nil {
			t.Errorf("CheckListen(%q, a key) = %v", addr, err)
		}
	}
	if err := CheckListen("nonsense", ""); err == nil || errors.Is(err, ErrNoKey) {
		t.Errorf("CheckListen of a bad address: %v", err)
	}
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// A body slower than Config.ReadTimeout is cut off: 408 body_timeout,
// counted, and the handler does not wait for the rest.
func TestAPIBodyReadDeadline(t *testing.T) {
	e := newEnv(t, Config{ReadTimeout: 300 * time.Millisecond})
	s := New(worker.NewEmitter(e.redis.Client(t), worker.EmitterConfig{Keys: e.keys}),
		Config{ReadTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, e.metrics)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.HTTPServer()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /v1/emit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event\":"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(raw), `"error":"body_timeout"`) {
		t.Fatalf("stalled body: %d %s", resp.StatusCode, raw)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("answered after %v, with a read timeout of 300ms", took)
	}
	if n := testutil.ToFloat64(e.metrics.Errors.WithLabelValues("body_timeout")); n != 1 {
		t.Errorf("realtime_api_errors_total{reason=body_timeout} = %v", n)
	}
}
