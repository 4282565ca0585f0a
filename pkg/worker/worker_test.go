package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// env is a Redis with a fake gateway: a session store to create sessions
// and a publisher to write their signals, as a gateway would.
type env struct {
	t     *testing.T
	rdb   *redis.Client
	keys  bus.Keys
	store *session.Store
}

func newEnv(t *testing.T) *env {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	keys := bus.NewKeys("", 4)
	return &env{t: t, rdb: rdb, keys: keys, store: session.New(rdb, session.Config{Keys: keys, Node: "gw"})}
}

// session creates a polling session and opens it (its connect signal).
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

// event writes an event signal as a gateway would.
func (e *env) event(sid, name, args string, ackID uint64) {
	e.t.Helper()
	sig := bus.Signal{Kind: bus.KindEvent, SID: sid, Gateway: "gw", Time: time.Now(), Name: name, Args: args}
	if ackID > 0 {
		sig.MsgID, sig.HasID, sig.AckData = ackID, true, true
	}
	if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.StreamFor(sid), Values: sig.Values()}).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// mailbox returns the packets waiting for a polling session (after 1::).
func (e *env) mailbox(sid string) []string {
	out, err := e.rdb.LRange(context.Background(), e.keys.Mailbox(sid), 1, -1).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) run(w *Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHandlersAndEffectsInOrder(t *testing.T) {
	e := newEnv(t)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond})
	var connected atomic.Int32
	ns := w.Namespace("")
	ns.OnConnect(func(ctx context.Context, s *Socket) error {
		connected.Add(1)
		return s.Emit("welcome", s.ID())
	})
	ns.OnEvent("echo", func(ctx context.Context, s *Socket, ev *Event) error {
		if err := ev.AckRaw(ev.Args); err != nil {
			return err
		}
		if err := ev.AckRaw(ev.Args); !errors.Is(err, ErrAlreadyAcked) {
			return fmt.Errorf("second ack: %v", err)
		}
		return nil
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	for i := 1; i <= 20; i++ {
		e.event(sid, "echo", fmt.Sprintf("[%d]", i), uint64(i))
	}
	waitFor(t, "21 packets", func() bool { return len(e.mailbox(sid)) >= 21 })
	got := e.mailbox(sid)
	want := []string{`5:::{"name":"welcome","args":["` + sid + `"]}`}
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprintf("6:::%d+[%d]", i, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
	if connected.Load() != 1 {
		t.Fatalf("OnConnect ran %d times", connected.Load())
	}
}

// A commit whose entry is already acknowledged applies nothing: effects are
// exactly once even if a worker re-runs a signal another one committed.
func TestCommitIsExactlyOnce(t *testing.T) {
	e := newEnv(t)
	sid := e.session()
	ctx := context.Background()
	stream := e.keys.StreamFor(sid)
	if err := e.rdb.XGroupCreateMkStream(ctx, stream, bus.GroupName, "0").Err(); err != nil {
		t.Fatal(err)
	}
	e.event(sid, "x", "[]", 0)
	res, err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: bus.GroupName, Consumer: "c", Streams: []string{stream, ">"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, m := range res[0].Messages {
		if sig, err := bus.ParseSignal(m.ID, m.Values); err == nil && sig.Kind == bus.KindEvent {
			id = m.ID
		}
	}
	commit := session.Commit{Stream: stream, Group: bus.GroupName, ID: id, Effects: []session.Effect{session.DeliverEffect(sid, "3:::once")}}
	for i, want := range []int{1, 0} {
		n, err := e.store.Apply(ctx, commit)
		if err != nil || n != want {
			t.Fatalf("apply #%d = %d %v, want %d", i, n, err, want)
		}
	}
	if got := e.mailbox(sid); !slices.Equal(got, []string{"3:::once"}) {
		t.Fatalf("mailbox %q", got)
	}
}

// A signal whose handler keeps failing goes to the dead-letter stream with
// its attempts and last error, its data ack is answered with an error, and
// the partition moves on.
func TestPoisonSignalIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	w := New(e.rdb, Config{Keys: e.keys, MaxAttempts: 3, LeaseTTL: 600 * time.Millisecond})
	var attempts atomic.Int32
	w.Namespace("").OnEvent("poison", func(ctx context.Context, s *Socket, ev *Event) error {
		attempts.Add(1)
		panic("boom")
	})
	w.Namespace("").OnEvent("fine", func(ctx context.Context, s *Socket, ev *Event) error {
		return s.Send("after")
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	e.event(sid, "poison", "[]", 7)
	e.event(sid, "fine", "[]", 0)
	waitFor(t, "the next signal handled", func() bool { return slices.Contains(e.mailbox(sid), "3:::after") })
	// The client asked for a data ack: it gets an error instead of a
	// callback that waits forever, before what follows.
	if got := e.mailbox(sid); !slices.Equal(got, []string{`6:::7+[{"error":"dead_lettered"}]`, "3:::after"}) {
		t.Fatalf("mailbox %q, want the dead letter's ack answered first", got)
	}
	if attempts.Load() != 3 {
		t.Fatalf("poison handled %d times, want 3", attempts.Load())
	}
	p := bus.Partition(sid, e.keys.Partitions())
	dead, err := e.rdb.XRange(context.Background(), e.keys.DeadLetter(p), "-", "+").Result()
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters: %v %v", dead, err)
	}
	sig, err := bus.ParseSignal(dead[0].ID, dead[0].Values)
	if err != nil || dead[0].Values["attempts"] != "3" || sig.Name != "poison" || dead[0].Values["error"] == "" {
		t.Fatalf("dead letter %v: %+v, %v", dead[0].Values, sig, err)
	}
}

// Two workers share the partitions; when one leaves the other takes all.
func TestPartitionsRebalance(t *testing.T) {
	e := newEnv(t)
	ttl := 600 * time.Millisecond
	w1 := New(e.rdb, Config{Keys: e.keys, Name: "w1", LeaseTTL: ttl})
	w2 := New(e.rdb, Config{Keys: e.keys, Name: "w2", LeaseTTL: ttl})
	stop1 := e.run(w1)
	defer stop1()
	waitFor(t, "w1 owning all 4", func() bool { return len(w1.Owned()) == 4 })
	stop2 := e.run(w2)
	waitFor(t, "an even share", func() bool { return len(w1.Owned()) == 2 && len(w2.Owned()) == 2 })
	if o := append(w1.Owned(), w2.Owned()...); len(o) != 4 {
		t.Fatalf("owned %v", o)
	}
	stop2()
	waitFor(t, "w1 owning all 4 again", func() bool { return len(w1.Owned()) == 4 })
}

// Entries a worker read but never acknowledged (it died) are handled by the
// worker that takes the partition over.
func TestPendingEntriesAreReclaimed(t *testing.T) {
	e := newEnv(t)
	sid := e.session()
	ctx := context.Background()
	stream := e.keys.StreamFor(sid)
	_ = e.rdb.XGroupCreateMkStream(ctx, stream, bus.GroupName, "0").Err()
	e.event(sid, "echo", `["lost"]`, 1)
	// A dead worker read everything and acknowledged nothing.
	if err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: bus.GroupName, Consumer: "dead", Streams: []string{stream, ">"}}).Err(); err != nil {
		t.Fatal(err)
	}
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond})
	var mu sync.Mutex
	var seen []string
	w.Namespace("").OnEvent("echo", func(ctx context.Context, s *Socket, ev *Event) error {
		mu.Lock()
		seen = append(seen, string(ev.Args))
		mu.Unlock()
		return ev.AckRaw(ev.Args)
	})
	stop := e.run(w)
	defer stop()
	waitFor(t, "the pending event re-handled", func() bool { return slices.Contains(e.mailbox(sid), `6:::1+["lost"]`) })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{`["lost"]`}) {
		t.Fatalf("seen %q", seen)
	}
}

// Ack on an event the client asked no ack for sends nothing and is no error;
// Acknowledged and a second Ack behave.
func TestAckSemantics(t *testing.T) {
	plain := &Event{Signal: bus.Signal{}, s: &Socket{}}
	if err := plain.Ack("x"); err != nil || plain.Acknowledged() || plain.Acknowledgeable() {
		t.Fatalf("ack without a request: %v acked=%v", err, plain.Acknowledged())
	}
	e := newEnv(t)
	sid := e.session()
	ev := &Event{Signal: bus.Signal{MsgID: 4, HasID: true, AckData: true}, s: &Socket{id: sid, em: NewEmitter(e.rdb, EmitterConfig{Keys: e.keys})}}
	if err := ev.Ack("ok"); err != nil || !ev.Acknowledged() {
		t.Fatalf("first ack: %v", err)
	}
	if err := ev.Ack("again"); !errors.Is(err, ErrAlreadyAcked) {
		t.Fatalf("second ack: %v", err)
	}
	if got := e.mailbox(sid); !slices.Equal(got, []string{`6:::4+["ok"]`}) {
		t.Fatalf("mailbox %q", got)
	}
}

// The Emitter and a detached Socket, as any Go process uses them: list,
// count, rooms, handshake data, broadcasts to a namespace and a room,
// disconnect by id; and EmitAck's timeout.
func TestEmitterAndSocketAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	em := NewEmitter(e.rdb, EmitterConfig{Keys: e.keys})
	a, b, c := e.session(), e.session(), e.session()
	var got []string
	for sid, err := range em.Sockets(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sid)
	}
	slices.Sort(got)
	want := []string{a, b, c}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Sockets = %q, want %q", got, want)
	}
	if n, _ := em.Count(ctx, ""); n != 3 {
		t.Fatalf("Count = %d", n)
	}
	for _, sid := range []string{a, b} {
		if err := em.Socket(sid, "").Join("r1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.Socket(a, "").Join("bad\nroom"); !errors.Is(err, ErrBadRoom) {
		t.Fatalf("bad room: %v", err)
	}
	if n, _ := em.CountRoom(ctx, "", "r1"); n != 2 {
		t.Fatalf("CountRoom = %d", n)
	}
	if got, want := roomSockets(t, em, "r1"), sorted(a, b); !slices.Equal(got, want) {
		t.Fatalf("RoomSockets = %q, want %q", got, want)
	}
	if got := roomSockets(t, em, "nobody"); len(got) != 0 {
		t.Fatalf("RoomSockets of an empty room = %q", got)
	}
	if rooms, _ := em.Socket(a, "").Rooms(ctx); !slices.Equal(rooms, []string{"r1"}) {
		t.Fatalf("Rooms = %q", rooms)
	}
	if hs, err := em.Socket(a, "").Handshake(ctx); err != nil || hs.Query != "t=1" {
		t.Fatalf("Handshake = %+v %v", hs, err)
	}
	if err := em.In("", "r1").Emit("news", 1); err != nil {
		t.Fatal(err)
	}
	if err := em.Of("").Send("all"); err != nil {
		t.Fatal(err)
	}
	if err := em.Socket(c, "").BroadcastSend("not c"); err != nil {
		t.Fatal(err)
	}
	for sid, want := range map[string][]string{
		a: {`5:::{"name":"news","args":[1]}`, "3:::all", "3:::not c"},
		b: {`5:::{"name":"news","args":[1]}`, "3:::all", "3:::not c"},
		c: {"3:::all"},
	} {
		if got := e.mailbox(sid); !slices.Equal(got, want) {
			t.Errorf("mailbox of %s = %q, want %q", sid, got, want)
		}
	}
	if err := em.Socket(b, "").Leave("r1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := em.CountRoom(ctx, "", "r1"); n != 1 {
		t.Fatalf("CountRoom after leave = %d", n)
	}
	if got := roomSockets(t, em, "r1"); !slices.Equal(got, []string{a}) {
		t.Fatalf("RoomSockets after leave = %q, want [%s]", got, a)
	}
	if err := em.Disconnect(ctx, c); err != nil {
		t.Fatal(err)
	}
	if n, _ := em.Count(ctx, ""); n != 2 {
		t.Fatalf("Count after Disconnect = %d", n)
	}
	if err := em.Socket(a, "").EmitAck(ctx, nil, "x"); !errors.Is(err, ErrNoReplies) {
		t.Fatalf("EmitAck on an emitter: %v", err)
	}

	// A worker's EmitAck: the callback gets ErrAckTimeout at the deadline.
	w := New(e.rdb, Config{Keys: e.keys})
	got2 := make(chan error, 1)
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	s := w.Emitter.Socket(a, "").attach(w)
	err := s.EmitAck(actx, func(_ context.Context, _ *Socket, _ json.RawMessage, err error) { got2 <- err }, "question", "q")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got2:
		if !errors.Is(err, ErrAckTimeout) {
			t.Fatalf("callback error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout callback")
	}
	mb := e.mailbox(a)
	if last := mb[len(mb)-1]; !strings.HasPrefix(last, "5:") || !strings.Contains(last, `+::{"name":"question","args":["q"]}`) {
		t.Fatalf("server emit with ack request: %q", last)
	}
}

// roomSockets lists a room of the default namespace, sorted.
func roomSockets(t *testing.T, em *Emitter, room string) []string {
	t.Helper()
	var out []string
	for sid, err := range em.RoomSockets(context.Background(), "", room) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sid)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestOnAnyEvent: events with a handler of their own go to it; the others
// go to OnAnyEvent, with their name and arguments.
func TestOnAnyEvent(t *testing.T) {
	e := newEnv(t)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond})
	ns := w.Namespace("")
	ns.OnEvent("known", func(ctx context.Context, s *Socket, ev *Event) error {
		return s.Emit("took", "known", ev.Args)
	})
	ns.OnAnyEvent(func(ctx context.Context, s *Socket, ev *Event) error {
		return s.Emit("took", "any:"+ev.Name, ev.Args)
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	e.event(sid, "known", `[1]`, 0)
	e.event(sid, "other", `["x",2]`, 0)
	e.event(sid, "third", "", 0)
	want := []string{
		`5:::{"name":"took","args":["known",[1]]}`,
		`5:::{"name":"took","args":["any:other",["x",2]]}`,
		`5:::{"name":"took","args":["any:third",[]]}`,
	}
	waitFor(t, "3 packets", func() bool { return len(e.mailbox(sid)) >= len(want) })
	if got := e.mailbox(sid); !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
}

// ev.Ack(ev.Args) and s.Emit("echo", ev.Args) give the client the
// arguments it sent, each as its own argument; Args next to other
// arguments is one argument.
func TestArgsAreTheWholeList(t *testing.T) {
	e := newEnv(t)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond})
	w.Namespace("").OnEvent("echo", func(ctx context.Context, s *Socket, ev *Event) error {
		if err := s.Emit("echo", ev.Args); err != nil {
			return err
		}
		if err := s.Emit("wrapped", "first", ev.Args); err != nil {
			return err
		}
		return ev.Ack(ev.Args)
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	e.event(sid, "echo", `[1,"two"]`, 7)
	waitFor(t, "3 packets", func() bool { return len(e.mailbox(sid)) >= 3 })
	want := []string{`5:::{"name":"echo","args":[1,"two"]}`, `5:::{"name":"wrapped","args":["first",[1,"two"]]}`, `6:::7+[1,"two"]`}
	if got := e.mailbox(sid); !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
	if _, err := marshalArgs([]any{Args(`{"not":"an array"}`)}); err == nil {
		t.Fatal("Args that is not an array was accepted as the argument list")
	}
}

// signalsCounted reads realtime_worker_signals_total{kind, result}.
func signalsCounted(t *testing.T, m *Metrics, kind, result string) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Signals.WithLabelValues(kind, result).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

// A rejected event answers the client at once with the app's error value,
// is not retried or dead-lettered, and the session's next event is handled
// right after it; it is counted "rejected".
func TestRejectAnswersAtOnce(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond, Metrics: m})
	var calls atomic.Int32
	w.Namespace("").OnEvent("nick", func(ctx context.Context, s *Socket, ev *Event) error {
		calls.Add(1)
		var nick string
		if err := ev.Decode(&nick); err != nil {
			return ev.Reject(map[string]string{"error": "nick must be a string"})
		}
		return ev.Ack("ok " + nick)
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	start := time.Now()
	e.event(sid, "nick", `[42]`, 1)
	e.event(sid, "nick", `["bob"]`, 2)
	waitFor(t, "2 acks", func() bool { return len(e.mailbox(sid)) >= 2 })
	want := []string{`6:::1+[{"error":"nick must be a string"}]`, `6:::2+["ok bob"]`}
	if got := e.mailbox(sid); !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the next event waited %v behind the rejected one", d)
	}
	time.Sleep(300 * time.Millisecond) // a retry would run the handler again
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2 (no retry)", n)
	}
	if n := signalsCounted(t, m, "event", "rejected"); n != 1 {
		t.Fatalf("rejected counted %v", n)
	}
	if n, _ := e.rdb.XLen(context.Background(), e.keys.DeadLetter(bus.Partition(sid, e.keys.Partitions()))).Result(); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// Events with no handler, and signals of a namespace this worker does not
// serve, are counted "unhandled", never "ok"; a client that asked for a
// data ack on one gets UnhandledAck at once, in order with the session's
// other answers, and one that asked for none gets nothing.
func TestUnhandledIsCountedAndAnswered(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond, Metrics: m})
	w.Namespace("").OnEvent("known", func(ctx context.Context, s *Socket, ev *Event) error { return ev.Ack("known") })
	stop := e.run(w)
	defer stop()
	sid := e.session()
	e.event(sid, "unknown", `[]`, 0)
	e.event(sid, "unknown", `[1]`, 1)
	for _, sig := range []bus.Signal{
		{Kind: bus.KindMessage, NS: "/elsewhere", Data: "hi"},
		{Kind: bus.KindEvent, NS: "/elsewhere", Name: "known", MsgID: 2, HasID: true, AckData: true},
		{Kind: bus.KindJSON, NS: "", Data: `{"a":1}`, MsgID: 3, HasID: true, AckData: true},
	} {
		sig.SID, sig.Gateway, sig.Time = sid, "gw", time.Now()
		if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.StreamFor(sid), Values: sig.Values()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e.event(sid, "known", `[]`, 4)
	want := []string{
		`6:::1+[{"error":"unhandled"}]`,
		`6::/elsewhere:2+[{"error":"unhandled"}]`,
		`6:::3+[{"error":"unhandled"}]`,
		`6:::4+["known"]`,
	}
	waitFor(t, "4 answers", func() bool { return len(e.mailbox(sid)) >= len(want) })
	if got := e.mailbox(sid); !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
	for _, c := range []struct {
		kind, result string
		want         float64
	}{
		{"event", "unhandled", 3},
		{"message", "unhandled", 1},
		{"json", "unhandled", 1},
		{"event", "ok", 1},
		{"message", "ok", 0},
		{"json", "ok", 0},
	} {
		if n := signalsCounted(t, m, c.kind, c.result); n != c.want {
			t.Errorf("signals{kind=%q,result=%q} = %v, want %v", c.kind, c.result, n, c.want)
		}
	}
}

// logLines collects the lines a worker logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(string(p)))
	return len(p), nil
}

// with returns the lines that contain all of subs.
func (l *logLines) with(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// Unhandled and rejected signals are logged at most once per second per
// reason; the next line says how many went unlogged. Every one is counted.
func TestUnhandledAndRejectedLogsAreRateLimited(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	var logs logLines
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	w.logEvery = 2 * time.Second // room for the burst on a busy machine
	w.Namespace("").OnEvent("strict", func(ctx context.Context, s *Socket, ev *Event) error { return ev.Reject("no") })
	w.Namespace("").OnEvent("last", func(ctx context.Context, s *Socket, ev *Event) error { return ev.Ack() })
	stop := e.run(w)
	defer stop()
	sid := e.session()
	start := time.Now()
	const n = 30
	for i := 0; i < n; i++ {
		e.event(sid, "nobody", `[]`, 0)
		e.event(sid, "strict", `[]`, 0)
	}
	e.event(sid, "last", `[]`, 1)
	waitFor(t, "the last event", func() bool { return len(e.mailbox(sid)) >= 1 })
	if d := time.Since(start); d >= w.logEvery {
		t.Fatalf("the burst took %v, more than the log period %v: nothing to check", d, w.logEvery)
	}
	if got := logs.with("reason=no_handler"); len(got) != 1 || strings.Contains(got[0], "unlogged") {
		t.Fatalf("no_handler lines in the burst: %q, want one without unlogged=", got)
	}
	if got := logs.with("reason=rejected"); len(got) != 1 {
		t.Fatalf("rejected lines in the burst: %q, want one", got)
	}
	time.Sleep(w.logEvery)
	e.event(sid, "nobody", `[]`, 0)
	e.event(sid, "strict", `[]`, 0)
	e.event(sid, "last", `[]`, 2)
	waitFor(t, "the second last event", func() bool { return len(e.mailbox(sid)) >= 2 })
	for _, reason := range []string{"no_handler", "rejected"} {
		got := logs.with("reason=" + reason)
		if len(got) != 2 || !strings.Contains(got[1], fmt.Sprintf("unlogged=%d", n-1)) {
			t.Errorf("%s lines: %q, want a second one with unlogged=%d", reason, got, n-1)
		}
	}
	if c := signalsCounted(t, m, "event", "unhandled"); c != n+1 {
		t.Errorf("unhandled counted %v, want %d", c, n+1)
	}
	if c := signalsCounted(t, m, "event", "rejected"); c != n+1 {
		t.Errorf("rejected counted %v, want %d", c, n+1)
	}
}

// A message handler rejects input by returning an error that wraps
// ErrRejected: what it did is committed, it runs once, and the session's
// next message is handled right after it, counted "rejected", never retried.
func TestRejectedMessageCommitsAndMovesOn(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond, Metrics: m})
	var calls atomic.Int32
	w.Namespace("").OnMessage(func(ctx context.Context, s *Socket, msg string) error {
		calls.Add(1)
		if msg == "" {
			if err := s.Send("say something"); err != nil {
				return err
			}
			return fmt.Errorf("%w: empty message", ErrRejected)
		}
		return s.Send("got " + msg)
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	start := time.Now()
	for _, data := range []string{"", "hi"} {
		sig := bus.Signal{Kind: bus.KindMessage, SID: sid, Gateway: "gw", Time: time.Now(), Data: data}
		if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.StreamFor(sid), Values: sig.Values()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "2 packets", func() bool { return len(e.mailbox(sid)) >= 2 })
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("the next message waited %v behind the rejected one", d)
	}
	if got, want := e.mailbox(sid), []string{"3:::say something", "3:::got hi"}; !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
	time.Sleep(300 * time.Millisecond) // a retry would run the handler again
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler ran %d times, want 2 (no retry)", n)
	}
	if n := signalsCounted(t, m, "message", "rejected"); n != 1 {
		t.Fatalf("rejected messages counted %v, want 1", n)
	}
	if n := signalsCounted(t, m, "message", "ok"); n != 1 {
		t.Fatalf("ok messages counted %v, want 1", n)
	}
}

// What the server HTTP API needs of the Emitter: whether a socket is
// connected to a namespace, listing by pages (every socket once, across
// pages), JSON messages and broadcasts with an exception.
func TestEmitterPagesConnectedJSONExcept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	em := NewEmitter(e.rdb, EmitterConfig{Keys: e.keys})
	var want []string
	for range 25 {
		want = append(want, e.session())
	}
	slices.Sort(want)
	var got []string
	var cursor uint64
	pages := 0
	for {
		ids, next, err := em.SocketsPage(ctx, "", "", cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids...)
		pages++
		if cursor = next; cursor == 0 {
			break
		}
		if pages > 100 {
			t.Fatal("SocketsPage never ends")
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Fatalf("SocketsPage over %d pages = %d ids, want %d", pages, len(got), len(want))
	}
	a, b, c := want[0], want[1], want[2]
	for _, sid := range []string{a, b, c} {
		if err := em.Socket(sid, "").Join("r"); err != nil {
			t.Fatal(err)
		}
	}
	if ids, next, err := em.SocketsPage(ctx, "", "r", 0, 100); err != nil || next != 0 || !slices.Equal(sorted(ids...), sorted(a, b, c)) {
		t.Fatalf("SocketsPage of room r = %q %d %v", ids, next, err)
	}
	if _, _, err := em.SocketsPage(ctx, "", "bad\nroom", 0, 10); !errors.Is(err, ErrBadRoom) {
		t.Fatalf("SocketsPage of a bad room: %v", err)
	}
	for _, tc := range []struct {
		sid, ns string
		want    bool
	}{{a, "", true}, {a, "/chat", false}, {"nosuchsid", "", false}} {
		if ok, err := em.Connected(ctx, tc.sid, tc.ns); err != nil || ok != tc.want {
			t.Errorf("Connected(%q, %q) = %v %v, want %v", tc.sid, tc.ns, ok, err, tc.want)
		}
	}
	if err := em.In("", "r").Except(b).SendJSON(map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := em.Of("").Except(a).Emit("all-but-a"); err != nil {
		t.Fatal(err)
	}
	for sid, want := range map[string][]string{
		a: {`4:::{"n":1}`},
		b: {`5:::{"name":"all-but-a"}`},
		c: {`4:::{"n":1}`, `5:::{"name":"all-but-a"}`},
	} {
		if got := e.mailbox(sid); !slices.Equal(got, want) {
			t.Errorf("mailbox of %s = %q, want %q", sid, got, want)
		}
	}
}

// RoomsPage lists the rooms of one namespace that have members, across
// pages, and no other keys: not another namespace's rooms, not the polling
// sets, not rooms that emptied; glob characters in names are literal.
func TestEmitterRoomsPage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	em := NewEmitter(e.rdb, EmitterConfig{Keys: e.keys})
	a, b := e.session(), e.session()
	want := []string{"r1", "with:colon", "glob*[x]?", `back\slash`}
	for _, room := range want {
		if err := em.Socket(a, "").Join(room); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 150 { // rooms that make more than one page (more than a small sorted set, which ZSCAN returns whole)
		room := fmt.Sprintf("many%03d", i)
		want = append(want, room)
		if err := em.Socket(b, "").Join(room); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.Socket(b, "").Join("gone"); err != nil {
		t.Fatal(err)
	}
	if err := em.Socket(b, "").Leave("gone"); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ZAdd(ctx, e.keys.RoomIndex(e.keys.PartitionOf(a)), redis.Z{Score: 1, Member: bus.RoomMember("/chat", "other-ns")}).Err(); err != nil {
		t.Fatal(err)
	}
	var got []string
	var cursor uint64
	pages := 0
	for {
		rooms, next, err := em.RoomsPage(ctx, "", cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rooms...)
		pages++
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("RoomsPage over %d pages = %q, want %q", pages, got, want)
	}
	if pages < 2 {
		t.Errorf("%d rooms in %d page with count 10", len(got), pages)
	}
	if rooms, _, err := em.RoomsPage(ctx, "/chat", 0, 1000); err != nil || !slices.Equal(rooms, []string{"other-ns"}) {
		t.Errorf("RoomsPage of /chat = %q %v", rooms, err)
	}
}

// WaitingNote (the worker's /readyz note) sums, per other app, the signals
// of the partitions this worker trimmed lately that wait for that app; its
// own group's and stale reports are left out. Every report is a gauge.
func TestWaitingNote(t *testing.T) {
	m := NewMetrics(nil)
	w := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Config{App: "echo", Metrics: m})
	if note := w.WaitingNote(); note != "" {
		t.Fatalf("note before any report: %q", note)
	}
	w.groupLagged(0, "chat", 5)
	w.groupLagged(1, "chat", 7)
	w.groupLagged(0, "echo", 9) // its own
	w.groupLagged(0, "team", -1)
	w.groupLagged(1, "old", 3)
	w.lagMu.Lock()
	w.groupLags["old"][1] = groupLag{n: 3, at: time.Now().Add(-time.Minute)}
	w.lagMu.Unlock()
	want := "signals waiting for app chat: 12 (none read them: its workers are stopped, or too slow)\n"
	if note := w.WaitingNote(); note != want {
		t.Fatalf("note %q, want %q", note, want)
	}
	var out dto.Metric
	if err := m.GroupLag.WithLabelValues("chat", "1").Write(&out); err != nil || out.GetGauge().GetValue() != 7 {
		t.Errorf("realtime_worker_group_lag{group=chat,partition=1} = %v (%v), want 7", out.GetGauge().GetValue(), err)
	}
}

// A slow handler holds back its own partition only: while it runs, the
// worker goes on reading and handling the other partitions (its batch is
// committed on its own when done, bus.Outcome.Later), and the signals
// after it in its partition wait for it, in order.
func TestSlowHandlerHoldsItsPartitionOnly(t *testing.T) {
	e := newEnv(t)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond})
	release := make(chan struct{})
	ns := w.Namespace("")
	ns.OnEvent("slow", func(ctx context.Context, s *Socket, ev *Event) error {
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		return ev.AckRaw(ev.Args)
	})
	ns.OnEvent("fast", func(ctx context.Context, s *Socket, ev *Event) error { return ev.AckRaw(ev.Args) })
	slow, fast := e.session(), e.session()
	for e.keys.PartitionOf(fast) == e.keys.PartitionOf(slow) {
		fast = e.session()
	}
	stop := e.run(w)
	defer stop()
	waitFor(t, "the connects handled", func() bool { return len(e.mailbox(slow))+len(e.mailbox(fast)) == 0 && pending(t, e) == 0 })
	e.event(slow, "slow", "[1]", 1)
	time.Sleep(2 * SlowBatchWait) // the slow handler runs
	e.event(slow, "fast", "[2]", 2)
	e.event(fast, "fast", "[3]", 3)
	waitFor(t, "the other partition's ack while the slow handler runs", func() bool { return len(e.mailbox(fast)) == 1 })
	if got := e.mailbox(slow); len(got) != 0 {
		t.Fatalf("the slow handler's partition went on without it: %q", got)
	}
	close(release)
	waitFor(t, "the slow partition's acks", func() bool { return len(e.mailbox(slow)) == 2 })
	if got, want := e.mailbox(slow), []string{"6:::1+[1]", "6:::2+[2]"}; !slices.Equal(got, want) {
		t.Fatalf("slow partition: %q, want %q", got, want)
	}
}

// pending counts the entries read and not yet acknowledged, over every
// partition of e.
func pending(t *testing.T, e *env) int64 {
	t.Helper()
	var n int64
	for p := range e.keys.Partitions() {
		res, err := e.rdb.XPending(context.Background(), e.keys.Stream(p), bus.GroupName).Result()
		if err != nil && !strings.Contains(err.Error(), "NOGROUP") {
			t.Fatal(err)
		}
		if res != nil {
			n += res.Count
		}
	}
	return n
}

// A polling session whose mailbox overflowed (its client did not drain
// it) is ended in Redis, where no gateway sees it: its disconnect signal is
// counted by reason when a worker commits it.
func TestOverflowDisconnectIsCounted(t *testing.T) {
	e := newEnv(t)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	big := strings.Repeat("x", 1<<20)
	for range 5 { // past 4 times the default mailbox bound
		if err := w.Emitter.Socket(sid, "").Send(big); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the overflow disconnect counted", func() bool {
		var m dto.Metric
		if err := w.metrics.Disconnects.WithLabelValues(string(bus.ReasonOverflow)).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue() == 1
	})
}

// A client-chosen event name is cut in log lines.
func TestLogName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"echo", "echo"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 300000), strings.Repeat("a", 64) + "…(300000 bytes)"},
		{strings.Repeat("a", 63) + "é" + "b", strings.Repeat("a", 63) + "…(66 bytes)"}, // é is not split
	} {
		if got := logName(tc.in); got != tc.want {
			t.Errorf("logName(%.20q…): %.100q, want %.100q", tc.in, got, tc.want)
		}
	}
}
