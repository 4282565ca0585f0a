package session

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

var prefixSeq atomic.Int64

func newStore(t testing.TB, node string) (*Store, *redis.Client) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	keys := bus.NewKeys(fmt.Sprintf("t%d:", prefixSeq.Add(1)), 4)
	return New(rdb, Config{Keys: keys, Node: node, MaxMailbox: 5, MaxBatchPackets: 3}), rdb
}

// signals reads every signal of sid from its partition stream.
func signals(t *testing.T, rdb *redis.Client, keys bus.Keys, sid string) []bus.Signal {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), keys.StreamFor(sid), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []bus.Signal
	for _, m := range msgs {
		s, err := bus.ParseSignal(m.ID, m.Values)
		if err != nil {
			t.Fatal(err)
		}
		if s.SID == sid {
			out = append(out, s)
		}
	}
	return out
}

func kinds(sigs []bus.Signal) []string {
	var out []string
	for _, s := range sigs {
		out = append(out, string(s.Kind)+"("+s.NS+")"+s.Reason)
	}
	return out
}

func TestPollLifecycle(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	sid, err := st.Create(ctx, Handshake{Query: "t=1"})
	if err != nil {
		t.Fatal(err)
	}
	// First poll: 1:: at once, connect signal written.
	res, pk, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p1", "100", false))
	if err != nil || res != PollAnswer || !slices.Equal(pk, []string{"1::"}) {
		t.Fatalf("first poll = %v %q %v", res, pk, err)
	}
	// Same t again (a retried GET whose answer was lost): same batch.
	res, pk, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p2", "100", false))
	if res != PollAnswer || !slices.Equal(pk, []string{"1::"}) {
		t.Fatalf("retried poll = %v %q", res, pk)
	}
	// Next poll acknowledges it and parks.
	res, _, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p3", "101", false))
	if res != PollParked {
		t.Fatalf("third poll = %v, want parked", res)
	}
	// A delivery wakes the parked poll through its gateway's channel.
	sub := rdb.Subscribe(ctx, st.Keys().GatewayChannel("gwA"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"3:::a", "3:::b", "3:::c", "3:::d"} {
		if err := st.Deliver(ctx, sid, p); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "W\n"+sid+"\np3" {
		t.Fatalf("wake = %q %v", msg.Payload, err)
	}
	// The re-run takes at most MaxBatchPackets (3), and says when the
	// oldest of them was queued (for the delivery latency).
	before := time.Now()
	reply, _ := st.Poll(ctx, sid, "xhr-polling", "p3", "101", true)
	if reply.Result != PollAnswer || !slices.Equal(reply.Packets, []string{"3:::a", "3:::b", "3:::c"}) {
		t.Fatalf("woken poll = %v %q", reply.Result, reply.Packets)
	}
	if reply.Depth != 4 {
		t.Fatalf("woken poll: mailbox depth %d, want 4", reply.Depth)
	}
	if reply.Routed.IsZero() || reply.Routed.After(before) || before.Sub(reply.Routed) > 5*time.Second {
		t.Fatalf("woken poll: routed at %v, polled at %v", reply.Routed, before)
	}
	// The connect packet and re-delivered batches carry no time.
	if reply, _ := st.Poll(ctx, sid, "xhr-polling", "p3b", "101", false); !reply.Routed.IsZero() || len(reply.Packets) != 3 {
		t.Fatalf("re-delivered batch: %q routed at %v", reply.Packets, reply.Routed)
	}
	res, pk, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p4", "102", false))
	if res != PollAnswer || !slices.Equal(pk, []string{"3:::d"}) {
		t.Fatalf("next poll = %v %q", res, pk)
	}
	// A second concurrent GET supersedes the parked one.
	res, _, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p5", "103", false))
	if res != PollParked {
		t.Fatal("p5 not parked")
	}
	res, _, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p6", "104", false))
	if res != PollParked {
		t.Fatal("p6 not parked")
	}
	for {
		msg, err = sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Payload[0] == 'K' {
			break
		}
	}
	if msg.Payload != "K\n"+sid+"\np5" {
		t.Fatalf("kick = %q", msg.Payload)
	}
	if res, _, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p5", "103", true)); res != PollSuperseded {
		t.Fatalf("rerun of superseded poll = %v", res)
	}
	// Ending writes one disconnect per namespace, default last, exactly once.
	if err := nilPipe(t, rdb)(st.JoinWrite(sid, "/chat", "?x=1", true)); err != nil {
		t.Fatal(err)
	}
	ok, err := st.End(ctx, sid, bus.ReasonClient, "0::")
	if !ok || err != nil {
		t.Fatalf("end = %v %v", ok, err)
	}
	if ok, _ := st.End(ctx, sid, bus.ReasonClient, ""); ok {
		t.Fatal("second end ended again")
	}
	got := kinds(signals(t, rdb, st.Keys(), sid))
	want := []string{"connect()", "connect(/chat)", "disconnect(/chat)client", "disconnect()client"}
	if !slices.Equal(got, want) {
		t.Fatalf("signals = %q, want %q", got, want)
	}
	// The next poll gets the last packet once (the client learns it was
	// booted), then the session is unknown.
	if res, pk, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p7", "105", false)); err != nil || res != PollAnswer || !slices.Equal(pk, []string{"0::"}) {
		t.Fatalf("poll after end = %v %q %v", res, pk, err)
	}
	if _, _, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p8", "106", false)); err != ErrUnknownSession {
		t.Fatalf("poll after end: %v", err)
	}
	if n, _ := rdb.Keys(ctx, st.Keys().Prefix()+"*{"+sid+"}").Result(); len(n) != 0 {
		t.Fatalf("keys left after end: %v", n)
	}
}

// nilPipe runs a Write on a real transaction and returns a func-call adapter.
func nilPipe(t *testing.T, rdb *redis.Client) func(bus.Write) error {
	return func(w bus.Write) error {
		_, err := rdb.TxPipelined(context.Background(), func(p redis.Pipeliner) error { w(p); return nil })
		return err
	}
}

func TestMailboxOverflowEndsSession(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	if _, _, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p1", "1", false)); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = st.Deliver(ctx, sid, "3:::x")
	}
	if err != ErrOverflow {
		t.Fatalf("err = %v, want overflow", err)
	}
	got := kinds(signals(t, rdb, st.Keys(), sid))
	if !slices.Equal(got, []string{"connect()", "disconnect()overflow"}) {
		t.Fatalf("signals = %q", got)
	}
}

func TestStreamOpenAndGatewayReap(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	if err := st.Deliver(ctx, sid, "3:::early"); err != nil {
		t.Fatal(err)
	}
	first, queued, err := st.OpenStream(ctx, sid, "websocket")
	if err != nil || !first || !slices.Equal(queued, []string{"3:::early"}) {
		t.Fatalf("open = %v %q %v", first, queued, err)
	}
	if _, _, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p", "1", false)); err != ErrWrongTransport {
		t.Fatalf("poll on a stream session: %v", err)
	}
	if err := st.Alive(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	other := New(rdb, Config{Keys: st.Keys(), Node: "gwB"})
	if n, _ := other.ReapGateways(ctx, 100); n != 0 {
		t.Fatalf("reaped %d sessions of a live gateway", n)
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := other.ReapGateways(ctx, 100); n != 1 || err != nil {
		t.Fatalf("reaped %d, %v", n, err)
	}
	got := kinds(signals(t, rdb, st.Keys(), sid))
	if !slices.Equal(got, []string{"connect()", "disconnect()gateway_lost"}) {
		t.Fatalf("signals = %q", got)
	}
	if n, _ := rdb.SCard(ctx, st.Keys().Prefix()+"gws").Result(); n != 0 {
		t.Fatalf("dead gateway still listed")
	}
}

func TestDeadlineReap(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	keys := bus.NewKeys("dl:", 2)
	st := New(rdb, Config{Keys: keys, Node: "gwA", PollingDuration: 10 * time.Millisecond, CloseTimeout: 20 * time.Millisecond, HandshakeTimeout: 20 * time.Millisecond})
	polled, _ := st.Create(ctx, Handshake{})
	never, _ := st.Create(ctx, Handshake{})
	if _, _, err := poll3(st.Poll(ctx, polled, "xhr-polling", "p", "1", false)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	n, err := st.ReapDeadlines(ctx, 100)
	if err != nil || n != 2 {
		t.Fatalf("reaped %d %v", n, err)
	}
	if got := kinds(signals(t, rdb, keys, polled)); !slices.Equal(got, []string{"connect()", "disconnect()timeout"}) {
		t.Fatalf("signals = %q", got)
	}
	if got := signals(t, rdb, keys, never); len(got) != 0 {
		t.Fatalf("a never-opened session signalled %q", kinds(got))
	}
}

// poll3 spreads a PollReply for compact assertions.
func poll3(r PollReply, err error) (PollResult, []string, error) {
	return r.Result, r.Packets, err
}

// A poll pushes the session's deadline forward only when it has got more
// than the slack (a tenth of the deadline, at most a second) short; POSTs
// (Touch) likewise.
func TestDeadlineRefreshSlack(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	key := st.cfg.Keys.Prefix() + "deadlines"
	score := func() float64 {
		t.Helper()
		v, err := rdb.ZScore(ctx, key, sid).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, _, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p", "1", false)); err != nil {
		t.Fatal(err)
	}
	first := score()
	full := float64((st.cfg.PollingDuration + st.cfg.CloseTimeout).Milliseconds())
	if now := float64(time.Now().UnixMilli()); first < now+full-1000 {
		t.Fatalf("deadline %v, want about now+%v", first-now, full)
	}
	time.Sleep(20 * time.Millisecond)
	if _, _, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p", "2", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Touch(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if got := score(); got != first {
		t.Fatalf("deadline moved from %v to %v within the slack", first, got)
	}
	// As if the last refresh were two seconds old: the next request refreshes.
	if err := rdb.HSet(ctx, st.key("s", sid), "dl", int64(first)-2000).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Touch(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if got := score(); got <= first {
		t.Fatalf("deadline %v not pushed past %v", got, first)
	}
}

// A POST to a streaming session records when it came (lh), which the
// gateway holding the stream reads with LastHeard; a polling session's
// POST does not (its deadline is its sign of life).
func TestTouchRecordsLastHeard(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	stream, _ := st.Create(ctx, Handshake{})
	polling, _ := st.Create(ctx, Handshake{})
	if _, _, err := st.OpenStream(ctx, stream, "htmlfile"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := poll3(st.Poll(ctx, polling, "xhr-polling", "p", "1", false)); err != nil {
		t.Fatal(err)
	}
	lastHeard := func(sid string) time.Time {
		t.Helper()
		at, err := st.LastHeard(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	if at := lastHeard(stream); !at.IsZero() {
		t.Fatalf("last heard %v before any POST", at)
	}
	before := time.Now().Truncate(time.Millisecond)
	if cls, _, err := st.Touch(ctx, stream); err != nil || cls != "stream" {
		t.Fatalf("Touch = %q, %v", cls, err)
	}
	if at := lastHeard(stream); at.Before(before) || at.After(time.Now()) {
		t.Fatalf("last heard %v, want between %v and now", at, before)
	}
	if _, _, err := st.Touch(ctx, polling); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.HExists(ctx, st.key("s", polling), "lh").Result(); err != nil || n {
		t.Fatalf("a polling session's POST recorded lh: %v %v", n, err)
	}
	if at := lastHeard("nosuchsid"); !at.IsZero() {
		t.Fatalf("last heard of an unknown session: %v", at)
	}
	if err := rdb.HSet(ctx, st.key("s", stream), "lh", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LastHeard(ctx, stream); err == nil {
		t.Fatal("a malformed lh read without an error")
	}
}
