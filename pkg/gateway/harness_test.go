package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// liveGateway is a started Gateway on its own test Redis, served by an
// httptest server, for the package's in-process tests.
type liveGateway struct {
	t    *testing.T
	red  *testredis.Server
	g    *Gateway
	srv  *httptest.Server
	rdb  *redis.Client
	keys bus.Keys
}

// testRouteRefresh is the route refresh of the tests' gateways: a new
// gateway waits three of them before it serves (session.Store.Alive).
const testRouteRefresh = 50 * time.Millisecond

// newLiveGateway starts a gateway with cfg (Node, Logger and short timers
// filled in when zero) on a fresh Redis; everything stops with the test.
func newLiveGateway(t *testing.T, cfg Config) *liveGateway {
	t.Helper()
	return newLiveGatewayOn(t, testredis.Start(t), cfg)
}

// newLiveGatewayOn is newLiveGateway on an existing Redis (a second gateway
// of the same cluster: give it another Node).
func newLiveGatewayOn(t *testing.T, red *testredis.Server, cfg Config) *liveGateway {
	t.Helper()
	rdb := red.Client(t)
	if cfg.Node == "" {
		cfg.Node = "gw-test"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.PollingDuration == 0 {
		cfg.PollingDuration = 2 * time.Second
	}
	if cfg.RouteRefresh == 0 {
		cfg.RouteRefresh = testRouteRefresh
	}
	g, err := New(rdb, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.Config = g.HTTPServer()
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return &liveGateway{t: t, red: red, g: g, srv: srv, rdb: rdb, keys: g.cfg.Keys}
}

// do sends a request and returns the status, body and headers.
func (tg *liveGateway) do(method, path, body string, header http.Header) (int, string, http.Header) {
	tg.t.Helper()
	req, err := http.NewRequest(method, tg.srv.URL+path, strings.NewReader(body))
	if err != nil {
		tg.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := tg.srv.Client().Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tg.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func (tg *liveGateway) get(path string) (int, string) {
	tg.t.Helper()
	code, body, _ := tg.do(http.MethodGet, path, "", nil)
	return code, body
}

func (tg *liveGateway) post(path, body string) (int, string) {
	tg.t.Helper()
	code, b, _ := tg.do(http.MethodPost, path, body, nil)
	return code, b
}

// handshake returns a new session id.
func (tg *liveGateway) handshake() string {
	tg.t.Helper()
	return tg.handshakeFrom(nil)
}

// handshakeFrom handshakes with header (an Origin, say).
func (tg *liveGateway) handshakeFrom(header http.Header) string {
	tg.t.Helper()
	code, body, _ := tg.do(http.MethodGet, "/socket.io/1/", "", header)
	sid, _, ok := strings.Cut(body, ":")
	if code != http.StatusOK || !ok {
		tg.t.Fatalf("handshake: %d %q", code, body)
	}
	return sid
}

// openPolling handshakes and opens an xhr-polling session (its first poll
// answers 1::).
func (tg *liveGateway) openPolling() string {
	tg.t.Helper()
	sid := tg.handshake()
	if code, body := tg.get("/socket.io/1/xhr-polling/" + sid + "?t=1"); code != http.StatusOK || body != "1::" {
		tg.t.Fatalf("first poll: %d %q", code, body)
	}
	return sid
}

// signals returns the signals of sid in its partition stream, described
// as "kind ns name args data id reason" with empty fields left out.
func (tg *liveGateway) signals(sid string) []string {
	tg.t.Helper()
	entries, err := tg.rdb.XRange(context.Background(), tg.keys.StreamFor(sid), "-", "+").Result()
	if err != nil {
		tg.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		s, err := bus.ParseSignal(e.ID, e.Values)
		if err != nil {
			tg.t.Fatalf("entry %s: %v", e.ID, err)
		}
		if s.SID != sid {
			continue
		}
		out = append(out, describeSignal(s))
	}
	return out
}

func describeSignal(s bus.Signal) string {
	f := []string{string(s.Kind)}
	for _, v := range []string{s.NS, s.Name, s.Args, s.Data} {
		if v != "" {
			f = append(f, v)
		}
	}
	if s.HasID {
		id := "id=" + strconv.FormatUint(s.MsgID, 10)
		if s.AckData {
			id += "+"
		}
		f = append(f, id)
	}
	if s.Query != "" {
		f = append(f, "query="+s.Query)
	}
	if s.Reason != "" {
		f = append(f, "reason="+string(s.Reason))
	}
	return strings.Join(f, " ")
}

// waitSignals waits until sid's signals end with want (in order).
func (tg *liveGateway) waitSignals(sid string, want ...string) {
	tg.t.Helper()
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = tg.signals(sid)
		if len(got) >= len(want) && slices.Equal(got[len(got)-len(want):], want) {
			return
		}
	}
	tg.t.Fatalf("signals of %s: %q, want them to end with %q", sid, got, want)
}

// mailbox returns the packets waiting in sid's mailbox.
func (tg *liveGateway) mailbox(sid string) []string {
	tg.t.Helper()
	mb, err := tg.rdb.LRange(context.Background(), tg.keys.Mailbox(sid), 0, -1).Result()
	if err != nil {
		tg.t.Fatal(err)
	}
	return mb
}

// namespaces returns sid's connected namespaces, sorted.
func (tg *liveGateway) namespaces(sid string) []string {
	tg.t.Helper()
	ns, err := tg.rdb.SMembers(context.Background(), tg.keys.SessionNamespaces(sid)).Result()
	if err != nil {
		tg.t.Fatal(err)
	}
	slices.Sort(ns)
	return ns
}

// publish appends route messages to the gateway's route stream.
func (tg *liveGateway) publish(routes ...bus.Route) {
	tg.t.Helper()
	for _, r := range routes {
		if r.Op == bus.OpBroadcast { // as commit.lua does: on every partition's stream
			for p := range tg.keys.Partitions() {
				tg.appendRoute(p, r.String())
			}
			continue
		}
		tg.appendRoute(tg.keys.PartitionOf(r.SID), r.String())
	}
}

// appendRoute appends one raw route message to the gateway's route stream
// of partition p.
func (tg *liveGateway) appendRoute(p int, msg string) {
	tg.t.Helper()
	if _, err := bus.AppendRoute(context.Background(), tg.rdb, tg.keys.RouteStream(p, tg.g.cfg.Node), msg); err != nil {
		tg.t.Fatal(err)
	}
}

// rejections returns the count of rejections for reason.
func (tg *liveGateway) rejections(reason rejectReason) float64 {
	var m dto.Metric
	if err := tg.g.metrics.Rejected.WithLabelValues(reason.String()).Write(&m); err != nil {
		tg.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitUntil polls cond every 10 ms until it holds or 5 s have passed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
