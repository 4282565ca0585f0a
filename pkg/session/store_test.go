package session

import (
	"context"
	"errors"
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

// testRouteRefresh is the route refresh of the tests' stores: a node new to
// the routing sets waits three of them (Store.Alive, Store.run).
const testRouteRefresh = 10 * time.Millisecond

func newStore(t testing.TB, node string) (*Store, *redis.Client) {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	keys := bus.NewKeys(fmt.Sprintf("t%d:", prefixSeq.Add(1)), 4)
	return New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: keys, Node: node, MailboxBytes: 40, MailboxDrainTimeout: 300 * time.Millisecond,
		PollBatchBytes: 15, BatchConfirmWait: 300 * time.Millisecond}), rdb
}

// routeTail reads a gateway's route streams, one per partition, as the
// gateway does, from where they were opened.
type routeTail struct {
	rdb     *redis.Client
	keys    []string
	last    []string
	pending []*redis.Message // read, not yet returned
}

// tailRoutes opens gateway node's route streams (the scripts append to
// them only once they exist) and reads them from there.
func tailRoutes(t testing.TB, rdb *redis.Client, keys bus.Keys, node string) *routeTail {
	t.Helper()
	rt := &routeTail{rdb: rdb}
	// The node is a gateway scripts route to (as Store.Alive makes it).
	if err := rdb.SAdd(context.Background(), keys.Gateways(), node).Err(); err != nil {
		t.Fatal(err)
	}
	for p := range keys.Partitions() {
		if err := rdb.SAdd(context.Background(), keys.RouteGateways(p), node).Err(); err != nil {
			t.Fatal(err)
		}
		key := keys.RouteStream(p, node)
		r := bus.NewRouteReader(rdb, key, bus.RouteReaderConfig{})
		if err := r.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		rt.keys, rt.last = append(rt.keys, key), append(rt.last, fmt.Sprintf("0-%d", r.Last()))
	}
	return rt
}

// ReceiveMessage returns the next route message (as pub/sub's did): in
// order within a partition's stream, in no particular order across them.
func (r *routeTail) ReceiveMessage(ctx context.Context) (*redis.Message, error) {
	if len(r.pending) == 0 {
		res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: append(slices.Clone(r.keys), r.last...), Block: 5 * time.Second}).Result()
		if err != nil {
			return nil, err
		}
		for _, s := range res {
			i := slices.Index(r.keys, s.Stream)
			for _, e := range s.Messages {
				r.last[i] = e.ID
				msg, _ := e.Values[bus.RouteField].(string)
				r.pending = append(r.pending, &redis.Message{Channel: s.Stream, Payload: msg})
			}
		}
	}
	m := r.pending[0]
	r.pending = r.pending[1:]
	return m, nil
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
		out = append(out, string(s.Kind)+"("+s.NS+")"+string(s.Reason))
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
	// Its answer could not be written: the retried GET (same t) gets the
	// same batch at once.
	if err := st.Release(ctx, sid, "p1"); err != nil {
		t.Fatal(err)
	}
	res, pk, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p2", "100", false))
	if res != PollAnswer || !slices.Equal(pk, []string{"1::"}) {
		t.Fatalf("retried poll = %v %q", res, pk)
	}
	// Next poll acknowledges it and parks.
	res, _, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p3", "101", false))
	if res != PollParked {
		t.Fatalf("third poll = %v, want parked", res)
	}
	// The first delivery is taken for the parked poll and offered to it on
	// its gateway's route stream; the poll is no longer parked, so the
	// next deliveries wait in the mailbox without a wake.
	sub := tailRoutes(t, rdb, st.Keys(), "gwA")
	before := time.Now()
	for _, p := range []string{"3:::a", "3:::b", "3:::c", "3:::d", "3:::e"} {
		if err := st.Deliver(ctx, sid, p); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := bus.ParseRoute(msg.Payload)
	if err != nil || offer.Op != bus.OpOffer || offer.SID != sid || offer.Arg != "p3" || offer.Packet != "3:::a" ||
		time.UnixMilli(offer.Time).Before(before.Truncate(time.Millisecond)) {
		t.Fatalf("offer = %q %v", msg.Payload, err)
	}
	// The offered packet is the poll's batch in flight: a run of the same
	// poll gets it, and, once released, the retried GET (same t) too.
	if reply, _ := st.Poll(ctx, sid, "xhr-polling", "p3", "101", true); !slices.Equal(reply.Packets, []string{"3:::a"}) || !reply.Owned {
		t.Fatalf("offered poll run again = %v %q", reply.Result, reply.Packets)
	}
	if err := st.Release(ctx, sid, "p3"); err != nil {
		t.Fatal(err)
	}
	if reply, _ := st.Poll(ctx, sid, "xhr-polling", "p3b", "101", false); !reply.Routed.IsZero() || !slices.Equal(reply.Packets, []string{"3:::a"}) || !reply.Owned {
		t.Fatalf("re-delivered batch: %q routed at %v", reply.Packets, reply.Routed)
	}
	// The next poll trims it and takes at most PollBatchBytes (15: three
	// packets), and says when the oldest of them was queued (for the
	// delivery latency).
	reply, _ := st.Poll(ctx, sid, "xhr-polling", "p4", "102", false)
	if reply.Result != PollAnswer || !slices.Equal(reply.Packets, []string{"3:::b", "3:::c", "3:::d"}) {
		t.Fatalf("next poll = %v %q", reply.Result, reply.Packets)
	}
	if reply.Depth != 4 {
		t.Fatalf("next poll: mailbox depth %d, want 4", reply.Depth)
	}
	if reply.Routed.IsZero() || reply.Routed.After(time.Now()) || before.Sub(reply.Routed) > 5*time.Second {
		t.Fatalf("next poll: routed at %v, delivered at %v", reply.Routed, before)
	}
	res, pk, _ = poll3(st.Poll(ctx, sid, "xhr-polling", "p4b", "102b", false))
	if res != PollAnswer || !slices.Equal(pk, []string{"3:::e"}) {
		t.Fatalf("poll after = %v %q", res, pk)
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
	if n, _ := rdb.Keys(ctx, st.Keys().Prefix()+"*"+sid+"*").Result(); len(n) != 0 {
		t.Fatalf("keys left after end: %v", n)
	}
}

// nilPipe runs a Write on a real transaction and returns a func-call adapter.
func nilPipe(t *testing.T, rdb *redis.Client) func(bus.Write) error {
	return func(w bus.Write) error {
		// As the committer does: a batch not sent (bus.ErrRetryBatch:
		// the route table was old, Store.write) is tried again after a
		// pause.
		for range 50 {
			_, err := rdb.TxPipelined(context.Background(), func(p redis.Pipeliner) error { return w(p) })
			if !bus.Retryable(err) {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("batch still aborted after 50 tries")
	}
}

// openPolling returns a new store (newStore's, of gateway gwA) and a
// session of it an xhr-polling GET opened.
func openPolling(t *testing.T) (*Store, *redis.Client, string) {
	t.Helper()
	st, rdb := newStore(t, "gwA")
	sid, err := st.Create(context.Background(), Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := poll3(st.Poll(context.Background(), sid, "xhr-polling", "p0", "0", false)); err != nil {
		t.Fatal(err)
	}
	return st, rdb, sid
}

// Mailboxes are bounded in bytes and time (MailboxBytes 40, drain timeout
// 300 ms, hard bound 4 × 40): a burst past the byte bound is kept while the
// client drains, a mailbox over it whose oldest packet waits longer than
// the drain timeout ends the session, and nothing passes the hard bound.
func TestMailboxBounds(t *testing.T) {
	ctx := context.Background()
	deliver := func(st *Store, sid string, n int) error {
		for i := 0; i < n; i++ {
			if err := st.Deliver(ctx, sid, "3:::12345"); err != nil { // 9 bytes
				return err
			}
		}
		return nil
	}
	overflowed := func(t *testing.T, rdb *redis.Client, st *Store, sid string) {
		t.Helper()
		got := kinds(signals(t, rdb, st.Keys(), sid))
		if !slices.Equal(got, []string{"connect()", "disconnect()overflow"}) {
			t.Fatalf("signals = %q", got)
		}
	}
	t.Run("a burst past the bound is kept while the client drains", func(t *testing.T) {
		st, _, sid := openPolling(t)
		if err := deliver(st, sid, 10); err != nil { // 90 bytes > 40
			t.Fatal(err)
		}
		// One packet per poll (PollBatchBytes 15), a poll every 100 ms, a new
		// packet every other poll: over the bound for longer than the drain
		// timeout, but its oldest packet never waits that long.
		got, delivered := 0, 10
		for i := 1; got < delivered; i++ {
			time.Sleep(100 * time.Millisecond)
			reply, err := st.Poll(ctx, sid, "xhr-polling", fmt.Sprint("p", i), fmt.Sprint(i), false)
			if err != nil || reply.Result != PollAnswer {
				t.Fatalf("poll %d: %v %v", i, reply.Result, err)
			}
			got += len(reply.Packets)
			if i%2 == 0 && delivered < 16 {
				if err := deliver(st, sid, 1); err != nil {
					t.Fatalf("delivery while draining: %v", err)
				}
				delivered++
			}
		}
	})
	t.Run("over the bound and not drained for the drain timeout", func(t *testing.T) {
		st, rdb, sid := openPolling(t)
		if err := deliver(st, sid, 5); err != nil { // 45 bytes
			t.Fatal(err)
		}
		time.Sleep(350 * time.Millisecond)
		if err := deliver(st, sid, 1); err != ErrOverflow {
			t.Fatalf("err = %v, want overflow", err)
		}
		overflowed(t, rdb, st, sid)
	})
	t.Run("under the bound, a mailbox may wait", func(t *testing.T) {
		st, _, sid := openPolling(t)
		if err := deliver(st, sid, 3); err != nil { // 27 bytes
			t.Fatal(err)
		}
		time.Sleep(350 * time.Millisecond)
		if err := deliver(st, sid, 1); err != nil {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("never past the hard bound", func(t *testing.T) {
		st, rdb, sid := openPolling(t)
		if err := deliver(st, sid, 17); err != nil { // 153 bytes <= 160
			t.Fatal(err)
		}
		if err := deliver(st, sid, 1); err != ErrOverflow {
			t.Fatalf("err = %v, want overflow", err)
		}
		overflowed(t, rdb, st, sid)
	})
	t.Run("a confirmed batch no longer counts", func(t *testing.T) {
		st, rdb, sid := openPolling(t)
		if err := nilPipe(t, rdb)(st.ConfirmWrite(sid, "p0")); err != nil {
			t.Fatal(err)
		}
		if err := deliver(st, sid, 4); err != nil { // 36 bytes
			t.Fatal(err)
		}
		reply, _ := st.Poll(ctx, sid, "xhr-polling", "p1", "1", false)
		if len(reply.Packets) != 1 || !reply.Owned { // PollBatchBytes 15: one packet of 9
			t.Fatalf("poll = %q owned %v", reply.Packets, reply.Owned)
		}
		if err := nilPipe(t, rdb)(st.ConfirmWrite(sid, "p1")); err != nil {
			t.Fatal(err)
		}
		// The next poll, same t, trims the confirmed batch.
		reply, _ = st.Poll(ctx, sid, "xhr-polling", "p2", "1", false)
		if !slices.Equal(reply.Packets, []string{"3:::12345"}) {
			t.Fatalf("poll after the confirm = %q", reply.Packets)
		}
		if n, _ := rdb.HGet(ctx, st.Keys().Session(sid), "mbb").Int(); n != 27 {
			t.Fatalf("mailbox bytes %d after the confirmed batch was trimmed, want 27", n)
		}
	})
}

// Two polls with the same cache-buster (a client whose clock did not tick,
// or a load balancer retrying): a batch whose answer was confirmed is not
// delivered again; one that was not is, once released or once the confirm
// wait (300 ms here) passed; meanwhile the poll waits, and the confirm
// wakes it.
func TestSameCacheBuster(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	tailRoutes(t, rdb, st.Keys(), "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	confirm := func(pollID string) {
		t.Helper()
		if err := nilPipe(t, rdb)(st.ConfirmWrite(sid, pollID)); err != nil {
			t.Fatal(err)
		}
	}
	reply, _ := st.Poll(ctx, sid, "xhr-polling", "p1", "5", false)
	if !slices.Equal(reply.Packets, []string{"1::"}) || !reply.Owned {
		t.Fatalf("first poll %q owned %v", reply.Packets, reply.Owned)
	}
	confirm("p1")
	if err := st.Deliver(ctx, sid, "3:::a"); err != nil {
		t.Fatal(err)
	}
	// Same t, the first answer confirmed: new data, not the old batch.
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p2", "5", false)
	if !slices.Equal(reply.Packets, []string{"3:::a"}) {
		t.Fatalf("second poll, same t: %q, want the new packet", reply.Packets)
	}
	// Same t while p2's answer is unconfirmed: the poll waits, and looks
	// again shortly.
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p3", "5", false)
	if reply.Result != PollParked || reply.Recheck <= 0 || reply.Recheck > 20*time.Millisecond {
		t.Fatalf("third poll: %v recheck %v, want parked with a recheck", reply.Result, reply.Recheck)
	}
	// Once p2's answer is confirmed, it has nothing new.
	confirm("p2")
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p3", "5", true)
	if reply.Result != PollParked || reply.Recheck != 0 {
		t.Fatalf("third poll re-run: %v recheck %v, want parked", reply.Result, reply.Recheck)
	}
	// A batch never confirmed (its gateway died after taking it) is
	// delivered again once the confirm wait passed.
	if err := st.Deliver(ctx, sid, "3:::b"); err != nil {
		t.Fatal(err)
	}
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p3", "5", true)
	if !slices.Equal(reply.Packets, []string{"3:::b"}) {
		t.Fatalf("woken poll: %q", reply.Packets)
	}
	start := time.Now()
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p4", "5", false)
	for reply.Result == PollParked && reply.Recheck > 0 {
		time.Sleep(reply.Recheck)
		reply, _ = st.Poll(ctx, sid, "xhr-polling", "p4", "5", true)
	}
	if !slices.Equal(reply.Packets, []string{"3:::b"}) || !reply.Owned {
		t.Fatalf("retry after the confirm wait: %q owned %v", reply.Packets, reply.Owned)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("re-delivered after %v, before the confirm wait", d)
	}
	// The late confirm of the dead poll changes nothing; p4 owns the batch.
	confirm("p3")
	if reply, _ := st.Poll(ctx, sid, "xhr-polling", "p5", "5", false); reply.Result != PollParked || reply.Recheck == 0 {
		t.Fatalf("poll after a stale confirm: %v %q recheck %v, want waiting for p4's", reply.Result, reply.Packets, reply.Recheck)
	}
	// A released batch (its answer could not be written) is delivered
	// again even to a poll with a new t: a client retrying a failed poll
	// sends one.
	if err := st.Release(ctx, sid, "p4"); err != nil {
		t.Fatal(err)
	}
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p5b", "7", false)
	if !slices.Equal(reply.Packets, []string{"3:::b"}) || !reply.Owned {
		t.Fatalf("poll with a new t after a release: %q owned %v", reply.Packets, reply.Owned)
	}
	// A new t trims the batch unconfirmed but owned: the client got it.
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "p6", "8", false)
	if reply.Result != PollParked {
		t.Fatalf("poll with a new t: %v %q", reply.Result, reply.Packets)
	}
}

// A poll script whose reply was lost (Redis stalled past the gateway's
// timeout, then ran it; go-redis sent it again meanwhile): a run of the
// same poll gets the batch an earlier run took; once the gateway released
// the poll (it answered 8:: without that batch), a late run takes nothing
// and the client's next poll, with a new cache-buster, gets the batch.
func TestPollReplyLost(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	tailRoutes(t, rdb, st.Keys(), "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	reply, _ := st.Poll(ctx, sid, "xhr-polling", "1", "5", false)
	if err := nilPipe(t, rdb)(st.ConfirmWrite(sid, "1")); err != nil || !slices.Equal(reply.Packets, []string{"1::"}) {
		t.Fatalf("first poll %q, confirm %v", reply.Packets, err)
	}
	// Poll 2 parks; a packet wakes it; its re-run takes the packet, and
	// its reply is lost.
	if reply, _ = st.Poll(ctx, sid, "xhr-polling", "2", "6", false); reply.Result != PollParked {
		t.Fatalf("second poll: %v %q, want parked", reply.Result, reply.Packets)
	}
	if err := st.Deliver(ctx, sid, "6:::1+[1]"); err != nil {
		t.Fatal(err)
	}
	if reply, _ = st.Poll(ctx, sid, "xhr-polling", "2", "6", true); !slices.Equal(reply.Packets, []string{"6:::1+[1]"}) {
		t.Fatalf("woken poll: %v %q", reply.Result, reply.Packets)
	}
	// The same run again (go-redis's retry) gets that batch again.
	if reply, _ = st.Poll(ctx, sid, "xhr-polling", "2", "6", true); !slices.Equal(reply.Packets, []string{"6:::1+[1]"}) || !reply.Owned {
		t.Fatalf("the woken poll run again: %v %q owned %v, want its batch", reply.Result, reply.Packets, reply.Owned)
	}
	// The gateway gives up on poll 2 and releases it; a run of it that
	// Redis executes later takes nothing, not even what came since.
	if err := st.Release(ctx, sid, "2"); err != nil {
		t.Fatal(err)
	}
	if err := st.Deliver(ctx, sid, "6:::2+[2]"); err != nil {
		t.Fatal(err)
	}
	for _, rerun := range []bool{true, false} {
		if reply, _ = st.Poll(ctx, sid, "xhr-polling", "2", "6", rerun); reply.Result != PollSuperseded {
			t.Fatalf("late run of the released poll (rerun %v): %v %q, want superseded", rerun, reply.Result, reply.Packets)
		}
	}
	// The client, answered 8::, polls with a new t: it gets the batch.
	reply, _ = st.Poll(ctx, sid, "xhr-polling", "3", "7", false)
	if !slices.Equal(reply.Packets, []string{"6:::1+[1]"}) || !reply.Owned {
		t.Fatalf("next poll: %v %q owned %v, want the released batch", reply.Result, reply.Packets, reply.Owned)
	}
	if err := nilPipe(t, rdb)(st.ConfirmWrite(sid, "3")); err != nil {
		t.Fatal(err)
	}
	if reply, _ = st.Poll(ctx, sid, "xhr-polling", "4", "8", false); !slices.Equal(reply.Packets, []string{"6:::2+[2]"}) {
		t.Fatalf("the poll after: %v %q", reply.Result, reply.Packets)
	}
	// Releasing a session that is gone writes nothing.
	if _, err := st.End(ctx, sid, bus.ReasonClient, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Release(ctx, sid, "4"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, st.Keys().Session(sid)).Result(); n != 0 {
		t.Fatal("Release of a gone session wrote its hash")
	}
}

// A poll on a session a stream holds is parked (and told when the session
// ends), never answered at once.
func TestPollOnStreamParks(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
		t.Fatal(err)
	}
	other := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwB"})
	sub := tailRoutes(t, rdb, st.Keys(), "gwB")
	reply, err := other.Poll(ctx, sid, "xhr-polling", "p1", "1", false)
	if err != nil || reply.Result != PollParked || !reply.OnStream {
		t.Fatalf("poll on a stream: %+v %v", reply, err)
	}
	if err := st.Deliver(ctx, sid, "3:::for the stream"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.End(ctx, sid, bus.ReasonHeartbeatTimeout, ""); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "C\n"+sid+"\nheartbeat_timeout\n" {
		t.Fatalf("gwB got %q %v, want the session's end", msg.Payload, err)
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
	if err := st.Alive(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	other := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwB"})
	if n, _ := other.ReapGateways(ctx, 100, 0); n != 0 {
		t.Fatalf("reaped %d sessions of a live gateway", n)
	}
	if exp, err := other.ExpiredGateways(ctx); len(exp) != 0 || err != nil {
		t.Fatalf("expired gateways %q %v while gwA lives", exp, err)
	}
	time.Sleep(100 * time.Millisecond)
	if exp, err := other.ExpiredGateways(ctx); !slices.Equal(exp, []string{"gwA"}) || err != nil {
		t.Fatalf("expired gateways %q %v, want gwA", exp, err)
	}
	if exp, _ := st.ExpiredGateways(ctx); len(exp) != 0 {
		t.Fatalf("gwA finds itself among the expired: %q", exp)
	}
	if n, err := other.ReapGatewaysOf(ctx, nil, 100, 0); n != 0 || err != nil {
		t.Fatalf("ReapGatewaysOf(none) reaped %d, %v", n, err)
	}
	if n, err := other.ReapGateways(ctx, 100, 0); n != 1 || err != nil {
		t.Fatalf("reaped %d, %v", n, err)
	}
	got := kinds(signals(t, rdb, st.Keys(), sid))
	if !slices.Equal(got, []string{"connect()", "disconnect()gateway_lost"}) {
		t.Fatalf("signals = %q", got)
	}
	if n, _ := rdb.SCard(ctx, st.Keys().Gateways()).Result(); n != 0 {
		t.Fatalf("dead gateway still listed")
	}
}

func TestDeadlineReap(t *testing.T) {
	ctx := context.Background()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	keys := bus.NewKeys("dl:", 2)
	st := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: keys, Node: "gwA", PollingDuration: 10 * time.Millisecond, CloseTimeout: 20 * time.Millisecond, HandshakeTimeout: 20 * time.Millisecond})
	polled, _ := st.Create(ctx, Handshake{})
	never, _ := st.Create(ctx, Handshake{})
	if _, _, err := poll3(st.Poll(ctx, polled, "xhr-polling", "p", "1", false)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	r, err := st.ReapDeadlines(ctx, 100)
	if err != nil || r != (Reaped{Timeout: 2}) {
		t.Fatalf("reaped %+v %v", r, err)
	}
	if got := kinds(signals(t, rdb, keys, polled)); !slices.Equal(got, []string{"connect()", "disconnect()timeout"}) {
		t.Fatalf("signals = %q", got)
	}
	if got := signals(t, rdb, keys, never); len(got) != 0 {
		t.Fatalf("a never-opened session signalled %q", kinds(got))
	}
}

// poll3 spreads a PollReply for compact assertions.
// A delivery to an empty mailbox takes its packet for the poll parked
// for it (an offer); a poll that stops being parked, because its
// duration ended (PollEnd) or it was released, is offered nothing after,
// and a packet offered to it reaches the next poll.
func TestPollOffer(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	sid, _ := st.Create(ctx, Handshake{})
	routes := func() int64 {
		n, err := rdb.XLen(ctx, st.Keys().RouteStream(st.Keys().PartitionOf(sid), "gwA")).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		return n
	}
	tail := tailRoutes(t, rdb, st.Keys(), "gwA")
	expectOffer := func(pollID, packet string) {
		t.Helper()
		msg, err := tail.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := bus.ParseRoute(msg.Payload); err != nil || r.Op != bus.OpOffer || r.Arg != pollID || r.Packet != packet {
			t.Fatalf("route %q, %v; want the offer of %q to %s", msg.Payload, err, packet, pollID)
		}
	}
	// deliverOffered delivers packet and expects it offered to pollID;
	// deliverUnrouted expects no route message at all.
	deliverOffered := func(pollID, packet string) {
		t.Helper()
		if err := st.Deliver(ctx, sid, packet); err != nil {
			t.Fatal(err)
		}
		expectOffer(pollID, packet)
	}
	deliverUnrouted := func(packet, fault string) {
		t.Helper()
		n := routes()
		if err := st.Deliver(ctx, sid, packet); err != nil {
			t.Fatal(err)
		}
		if routes() != n {
			t.Fatal(fault)
		}
	}
	parkedFor := func(pollID, t0 string) {
		t.Helper()
		if r, err := st.Poll(ctx, sid, "xhr-polling", pollID, t0, false); err != nil || r.Result != PollParked || r.Recheck != 0 {
			t.Fatalf("poll %s = %+v, %v; want parked for packets", pollID, r, err)
		}
	}
	gets := func(pollID, t0 string, want ...string) {
		t.Helper()
		if r, err := st.Poll(ctx, sid, "xhr-polling", pollID, t0, false); err != nil || !slices.Equal(r.Packets, want) {
			t.Fatalf("poll %s = %+v, %v; want %q", pollID, r, err, want)
		}
	}
	gets("p1", "1", "1::")

	// The duration ends with nothing offered: 8::, and no longer parked.
	parkedFor("p2", "2")
	if r, err := st.PollEnd(ctx, sid, "xhr-polling", "p2", "2"); err != nil || r.Result != PollSuperseded {
		t.Fatalf("PollEnd = %+v, %v", r, err)
	}
	deliverUnrouted("3:::a", "a delivery after PollEnd was routed to the poll that ended")
	gets("p3", "3", "3:::a")

	// Offered as the duration ends: PollEnd answers with it.
	parkedFor("p4", "4")
	deliverOffered("p4", "3:::b")
	if r, err := st.PollEnd(ctx, sid, "xhr-polling", "p4", "4"); err != nil || !r.Owned || !slices.Equal(r.Packets, []string{"3:::b"}) {
		t.Fatalf("PollEnd with an offer = %+v, %v", r, err)
	}
	if err := nilPipe(t, rdb)(st.ConfirmWrite(sid, "p4")); err != nil {
		t.Fatal(err)
	}

	// Offered to a poll gone from its gateway: released, the next poll
	// (a new t) gets it; a second delivery waits behind it, unoffered.
	parkedFor("p5", "5")
	deliverOffered("p5", "3:::c")
	deliverUnrouted("3:::d", "a second delivery was routed: the poll it would wake took the first")
	if err := st.ReleaseOffer(ctx, sid, "p5"); err != nil {
		t.Fatal(err)
	}
	gets("p6", "6", "3:::c")
	gets("p7", "7", "3:::d")

	// A released poll is offered nothing.
	parkedFor("p8", "8")
	if err := st.Release(ctx, sid, "p8"); err != nil {
		t.Fatal(err)
	}
	deliverUnrouted("3:::e", "a delivery was routed to a released poll")
	gets("p9", "9", "3:::e")

	// ReleaseOffer gives an offered packet back only while no run of its
	// poll took it: here the poll's last run (PollEnd) did, so its answer
	// carries the packet and the next poll trims it.
	parkedFor("p10", "10")
	deliverOffered("p10", "3:::f")
	if r, err := st.PollEnd(ctx, sid, "xhr-polling", "p10", "10"); err != nil || !slices.Equal(r.Packets, []string{"3:::f"}) {
		t.Fatalf("PollEnd with an offer = %+v, %v", r, err)
	}
	if err := st.ReleaseOffer(ctx, sid, "p10"); err != nil {
		t.Fatal(err)
	}
	parkedFor("p11", "11")
	deliverOffered("p11", "3:::g")
	if err := st.ReleaseOffer(ctx, sid, "p11"); err != nil {
		t.Fatal(err)
	}
	gets("p12", "12", "3:::g")
	// The packet, delivered again, is now p12's batch with p12's t: a
	// retry of that GET (same t, its gateway died) waits for the
	// confirmation instead of trimming it.
	if r, err := st.Poll(ctx, sid, "xhr-polling", "p12r", "12", false); err != nil || r.Result != PollParked || r.Recheck == 0 {
		t.Fatalf("retry of a re-delivered batch's poll = %+v, %v; want parked with a recheck", r, err)
	}
}

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
	key := st.Keys().Deadlines(st.Keys().PartitionOf(sid))
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
	if err := rdb.HSet(ctx, st.Keys().Session(sid), "dl", int64(first)-2000).Err(); err != nil {
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
	if n, err := rdb.HExists(ctx, st.Keys().Session(polling), "lh").Result(); err != nil || n {
		t.Fatalf("a polling session's POST recorded lh: %v %v", n, err)
	}
	if at := lastHeard("nosuchsid"); !at.IsZero() {
		t.Fatalf("last heard of an unknown session: %v", at)
	}
	if err := rdb.HSet(ctx, st.Keys().Session(stream), "lh", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LastHeard(ctx, stream); err == nil {
		t.Fatal("a malformed lh read without an error")
	}
}

// A zero Config takes the named defaults; fields that are set are kept.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.defaults()
	want := Config{
		Keys:                bus.NewKeys("", 0),
		HandshakeTimeout:    DefaultHandshakeTimeout,
		CloseTimeout:        DefaultCloseTimeout,
		PollingDuration:     DefaultPollingDuration,
		MailboxBytes:        DefaultMailboxBytes,
		MailboxDrainTimeout: DefaultMailboxDrainTimeout,
		PollBatchBytes:      DefaultPollBatchBytes,
		BatchConfirmWait:    DefaultBatchConfirmWait,
		MaxNamespaces:       DefaultMaxNamespaces,
		RouteRefresh:        DefaultRouteRefresh,
	}
	if c != want {
		t.Errorf("zero Config with defaults:\n%+v\nwant\n%+v", c, want)
	}
	set := Config{
		Keys: bus.NewKeys("x:", 4), Node: "n", HandshakeTimeout: time.Second, CloseTimeout: 2 * time.Second,
		PollingDuration: 3 * time.Second, MailboxBytes: 4, MailboxDrainTimeout: 5 * time.Second,
		PollBatchBytes: 6, BatchConfirmWait: 7 * time.Second, MaxNamespaces: 8, ExclusiveStreams: true,
		RouteRefresh: 9 * time.Second,
	}
	c = set
	c.defaults()
	if c != set {
		t.Errorf("a Config with every field set changed:\n%+v\nwant\n%+v", c, set)
	}
}

// Renew reports how long the liveness key had left; ProbeAlive writes it
// without extending that. ReapGateways with a guard ends nothing while the
// caller's own key has less than the guard left (a stall since it renewed
// it), and ends the dead gateway's sessions once it has more.
func TestGatewayReapGuard(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	other := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwB"})
	sid, _ := st.Create(ctx, Handshake{})
	if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
		t.Fatal(err)
	}
	if left, err := st.Renew(ctx, 50*time.Millisecond); err != nil || left != 0 {
		t.Fatalf("first Renew: %v left, %v", left, err)
	}
	if left, err := other.Renew(ctx, time.Second); err != nil || left != 0 {
		t.Fatalf("first Renew of gwB: %v left, %v", left, err)
	}
	time.Sleep(100 * time.Millisecond) // gwA's key expired: gwA is dead
	if err := other.ProbeAlive(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := other.Renew(ctx, time.Second)
	if err != nil || left <= 800*time.Millisecond || left > 900*time.Millisecond {
		t.Fatalf("Renew after 100 ms and a probe: %v left, %v; want about 900ms (the probe keeps the TTL)", left, err)
	}
	// As if Redis had stalled since gwB renewed: its key has run down.
	if err := rdb.PExpire(ctx, st.Keys().GatewayAlive("gwB"), 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := other.ReapGateways(ctx, 100, 500*time.Millisecond); !errors.Is(err, ErrStalled) || n != 0 {
		t.Fatalf("reap with a stale own key: %d, %v", n, err)
	}
	if got := kinds(signals(t, rdb, st.Keys(), sid)); !slices.Equal(got, []string{"connect()"}) {
		t.Fatalf("signals after a refused reap: %q", got)
	}
	if _, err := other.Renew(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := other.ReapGateways(ctx, 100, 500*time.Millisecond); err != nil || n != 1 {
		t.Fatalf("reap with a fresh own key: %d, %v", n, err)
	}
	if got := kinds(signals(t, rdb, st.Keys(), sid)); !slices.Equal(got, []string{"connect()", "disconnect()gateway_lost"}) {
		t.Fatalf("signals = %q", got)
	}
}

// A gateway started again under the same node id ends the streaming
// sessions its previous run left, although its liveness key is alive (so
// no other gateway would reap them); other gateways' sessions stay.
func TestEndOwnStreams(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	other := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwB"})
	var mine []string
	for i := 0; i < 3; i++ {
		sid, _ := st.Create(ctx, Handshake{})
		if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
			t.Fatal(err)
		}
		mine = append(mine, sid)
	}
	theirs, _ := other.Create(ctx, Handshake{})
	if _, _, err := other.OpenStream(ctx, theirs, "websocket"); err != nil {
		t.Fatal(err)
	}
	if err := st.Alive(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	again := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwA"}) // the next run
	if n, err := again.EndOwnStreams(ctx); err != nil || n != 3 {
		t.Fatalf("EndOwnStreams = %d, %v", n, err)
	}
	for _, sid := range mine {
		if got := kinds(signals(t, rdb, st.Keys(), sid)); !slices.Equal(got, []string{"connect()", "disconnect()gateway_lost"}) {
			t.Fatalf("signals of %s = %q", sid, got)
		}
	}
	if got := kinds(signals(t, rdb, st.Keys(), theirs)); !slices.Equal(got, []string{"connect()"}) {
		t.Fatalf("signals of another gateway's session = %q", got)
	}
	if n, err := again.EndOwnStreams(ctx); err != nil || n != 0 {
		t.Fatalf("EndOwnStreams again = %d, %v", n, err)
	}
}
