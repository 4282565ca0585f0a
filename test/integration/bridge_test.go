package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/worker"
)

const bridgeSecret = "bridge-test-secret"

// bridgeApp is an app behind `worker -app http`: the core of the echo
// contract (the same as examples/echo, written against the bridge's JSON)
// and a few events that exercise the bridge's fault paths:
//
//   - flaky: the first request carrying the signal answers 500, the next
//     answers ack ["ok", <requests seen>] and emits flaky-emit;
//   - poison: every request carrying it answers 500 (dead-lettered);
//   - reject: answers reject [{"error":"bad input"}].
type bridgeApp struct {
	t  *testing.T
	em *worker.Emitter

	mu       sync.Mutex
	seen     map[string]int // signal id → requests that carried it
	byName   map[string]int // event name → requests that carried one
	badSigs  int
	noHS     int    // signals other than disconnect without a handshake
	lastAddr string // a handshake's address
	lastUA   string // a handshake's user-agent header
}

func newBridgeApp(t *testing.T, rdb redis.UniversalClient) *bridgeApp {
	return &bridgeApp{t: t, em: worker.NewEmitter(rdb, worker.EmitterConfig{}), seen: map[string]int{}, byName: map[string]int{}}
}

func (a *bridgeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := bridge.Verify([]byte(bridgeSecret), r.Header.Get(bridge.HeaderTimestamp), r.Header.Get(bridge.HeaderSignature), body, time.Now(), 0); err != nil {
		a.mu.Lock()
		a.badSigs++
		a.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req bridge.Request
	if err := json.Unmarshal(body, &req); err != nil || req.V != bridge.Version {
		http.Error(w, fmt.Sprintf("bad request (v %d): %v", req.V, err), http.StatusBadRequest)
		return
	}
	fail := false
	a.mu.Lock()
	for _, s := range req.Signals {
		a.seen[s.ID]++
		if s.Type == bridge.TypeEvent {
			a.byName[s.Name]++
			if s.Name == "poison" || (s.Name == "flaky" && a.seen[s.ID] == 1) {
				fail = true
			}
		}
		if s.Handshake == nil && s.Type != bridge.TypeDisconnect {
			a.noHS++
		} else if s.Handshake != nil {
			a.lastAddr, a.lastUA = s.Handshake.Address, s.Handshake.Headers["user-agent"]
		}
	}
	a.mu.Unlock()
	if fail {
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
		return
	}
	ans := bridge.Answer{V: bridge.Version}
	for _, s := range req.Signals {
		res, err := a.handle(r.Context(), s)
		if err != nil {
			res = bridge.Result{Error: err.Error()}
		}
		ans.Results = append(ans.Results, res)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

func raw(vs ...any) json.RawMessage {
	b, err := json.Marshal(vs)
	if err != nil {
		panic(err)
	}
	return b
}

// ack answers the event's ack when the client asked for one.
func ack(s bridge.Signal, args ...any) []bridge.Effect {
	if s.AckID == nil {
		return nil
	}
	return []bridge.Effect{{Op: bridge.OpAck, Args: raw(args...)}}
}

func (a *bridgeApp) handle(ctx context.Context, s bridge.Signal) (bridge.Result, error) {
	var res bridge.Result
	switch s.Type {
	case bridge.TypeConnect:
		res.Effects = []bridge.Effect{{Op: bridge.OpEmit, Name: "welcome", Args: raw(map[string]string{"sid": s.SID, "ns": s.Namespace})}}
	case bridge.TypeMessage:
		res.Effects = []bridge.Effect{{Op: bridge.OpSend, Data: s.Data}}
	case bridge.TypeJSON:
		res.Effects = []bridge.Effect{{Op: bridge.OpJSON, Data: s.Data}}
	case bridge.TypeAck:
		var args []json.RawMessage
		if err := json.Unmarshal(s.Args, &args); err == nil && len(args) > 0 {
			res.Effects = []bridge.Effect{{Op: bridge.OpEmit, Name: "answer", Args: raw(args[0])}}
		}
	case bridge.TypeEvent:
		var args []json.RawMessage
		if err := json.Unmarshal(s.Args, &args); err != nil {
			return res, err
		}
		arg := func(i int, v any) error {
			if i >= len(args) {
				return errors.New("missing argument")
			}
			return json.Unmarshal(args[i], v)
		}
		var room string
		switch s.Name {
		case "echo":
			if s.AckID != nil {
				res.Effects = []bridge.Effect{{Op: bridge.OpAck, Args: s.Args}}
			} else {
				res.Effects = []bridge.Effect{{Op: bridge.OpEmit, Name: "echo", Args: s.Args}}
			}
		case "join", "leave":
			if err := arg(0, &room); err != nil || room == "" {
				res.Reject = raw(map[string]string{"error": "room must be a string"})
				break
			}
			res.Effects = append([]bridge.Effect{{Op: s.Name, Room: room}}, ack(s, true)...)
		case "to":
			if err := arg(0, &room); err != nil || room == "" || len(args) < 2 {
				res.Reject = raw(map[string]string{"error": "to room payload"})
				break
			}
			res.Effects = append([]bridge.Effect{{Op: bridge.OpEmit, Room: room, Except: s.SID, Name: "relay", Args: raw(args[1])}}, ack(s, true)...)
		case "shout":
			var payload json.RawMessage = []byte("null")
			if len(args) > 0 {
				payload = args[0]
			}
			res.Effects = append([]bridge.Effect{{Op: bridge.OpEmit, Broadcast: true, Except: s.SID, Name: "shout", Args: raw(payload)}}, ack(s, true)...)
		case "whoami":
			res.Effects = ack(s, s.SID)
		case "count":
			n, err := a.em.Count(ctx, s.Namespace)
			if err != nil {
				return res, err
			}
			res.Effects = ack(s, n)
		case "ask":
			n, err := rand.Int(rand.Reader, big.NewInt(worker.MaxAckID))
			if err != nil {
				return res, err
			}
			id := n.Uint64() + 1
			var q json.RawMessage = []byte("null")
			if len(args) > 0 {
				q = args[0]
			}
			res.Effects = []bridge.Effect{{Op: bridge.OpEmitAck, Name: "question", Args: raw(q), AckID: id}}
		case "bye":
			res.Effects = []bridge.Effect{{Op: bridge.OpDisconnect}}
		case "flaky":
			a.mu.Lock()
			n := a.seen[s.ID]
			a.mu.Unlock()
			res.Effects = append(ack(s, "ok", n), bridge.Effect{Op: bridge.OpEmit, Name: "flaky-emit", Args: raw(n)})
		case "reject":
			res.Reject = raw(map[string]string{"error": "bad input"})
		}
	}
	return res, nil
}

func (a *bridgeApp) count(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byName[name]
}

// bridgeWorker starts `worker -app http` pointed at app.
func (c *cluster) bridgeWorker(name string, app http.Handler, extra ...string) *proc {
	c.t.Helper()
	srv := httptest.NewServer(app)
	c.t.Cleanup(srv.Close)
	return c.worker(name, "http", append([]string{"-http-endpoint", srv.URL + "/realtime/", "-http-secret", bridgeSecret}, extra...)...)
}

// The official socket.io-client 0.9.16 passes the whole echo contract
// (acks, emits, messages, rooms, broadcasts, server-to-client acks, server
// disconnect; both namespaces) against two gateways whose workers are two
// `worker -app http` bridged to a Go app that speaks only the bridge's
// JSON, over websocket and xhr-polling.
func TestBridgeOfficialClientEchoContract(t *testing.T) {
	script := nodeScript(t, "echo-contract.js")
	for _, transport := range []string{"websocket", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			c := newCluster(t)
			app := newBridgeApp(t, c.rdb)
			gws := []*proc{c.gateway("a"), c.gateway("b")}
			c.bridgeWorker("w1", app)
			c.bridgeWorker("w2", app)
			out := runNode(t, script, "--urls", strings.Join(urls(gws...), ","), "--transport", transport)
			if !contractPassed(out) {
				t.Fatalf("unexpected result:\n%s", out)
			}
			app.mu.Lock()
			defer app.mu.Unlock()
			// Every request was signed, and every signal but a late
			// disconnect carried the handshake the gateway kept (its
			// allow-listed headers, the client's address).
			if app.badSigs != 0 || app.noHS != 0 || !strings.HasPrefix(app.lastAddr, "127.0.0.1") || app.lastUA == "" {
				t.Errorf("bad signatures %d, signals without a handshake %d, last address %q, user-agent %q",
					app.badSigs, app.noHS, app.lastAddr, app.lastUA)
			}
			t.Logf("%s", lastLine(out))
		})
	}
}

// Through `worker -app http` and the official client: an app answering 500
// then 200 gets the signal again and the client its ack and emit once; an
// app rejecting input answers the client's ack at once (no retry); an app
// always answering 500 has the signal dead-lettered after -max-attempts
// (with doubling backoff), and the other sessions' and the same session's
// later signals are answered.
func TestBridgeRetryRejectDeadLetter(t *testing.T) {
	script := nodeScript(t, "bridge-faults.js")
	c := newCluster(t)
	app := newBridgeApp(t, c.rdb)
	gw := c.gateway("a")
	w := c.bridgeWorker("w1", app, "-max-attempts", "3", "-retry-backoff", "100ms", "-max-retry-backoff", "400ms",
		"-admin-addr", "127.0.0.1:0")
	admin := "http://" + w.logged(adminRE)
	out := runNode(t, script, "--url", urls(gw)[0])
	if m := summaryRE.FindStringSubmatch(out); m == nil || m[2] != "0" || m[1] != "4" {
		t.Fatalf("unexpected result:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "reject took") {
			t.Log(line)
		}
	}
	if n := app.count("flaky"); n != 2 {
		t.Errorf("the app saw flaky %d times, want 2 (500, then 200)", n)
	}
	if n := app.count("reject"); n != 1 {
		t.Errorf("the app saw reject %d times, want 1 (no retry)", n)
	}
	if n := app.count("poison"); n != 3 {
		t.Errorf("the app saw poison %d times, want 3 (-max-attempts)", n)
	}
	// The poison signal, and only it, is in a dead-letter stream, with its
	// attempts and the app's status.
	var dead []map[string]any
	for p := range c.keys.Partitions() {
		msgs, err := c.rdb.XRange(context.Background(), c.keys.DeadLetter(p), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			dead = append(dead, m.Values)
		}
	}
	if len(dead) != 1 {
		t.Fatalf("dead letters: %v, want the poison signal only", dead)
	}
	d := fmt.Sprint(dead[0])
	if !strings.Contains(d, "poison") || dead[0]["attempts"] != "3" || !strings.Contains(d, "500") {
		t.Errorf("dead letter %s: want the poison event, 3 attempts, status 500", d)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if app.badSigs != 0 {
		t.Errorf("%d requests with a bad signature", app.badSigs)
	}
	// The metrics tell the same story: four 500s (flaky once, poison three
	// times), three signals sent again (flaky once, poison twice), one
	// rejection, one dead letter.
	_, metrics, _ := get(t, admin+"/metrics")
	for _, want := range []string{
		`realtime_bridge_requests_total{status="500"} 4`,
		`realtime_bridge_retries_total 3`,
		`realtime_bridge_signals_total{result="rejected",type="event"} 1`,
		`realtime_worker_dead_letters_total 1`,
		`realtime_bridge_request_duration_seconds_count `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grepLines(metrics, "realtime_bridge_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
