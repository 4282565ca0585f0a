package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// A script finds its caller's route table stale when the partition's
// sessions may name a gateway the table misses: it writes nothing, a script
// the store runs runs again with the table read anew (and its route message
// reaches the new gateway), and a commit batch's step fails.
func TestRouteTableStale(t *testing.T) {
	ctx := context.Background()
	gwA, rdb := newStore(t, "gwA")
	tailRoutes(t, rdb, gwA.Keys(), "gwA")
	worker := New(rdb, Config{Keys: gwA.Keys(), Node: "w", RouteRefresh: time.Hour})
	if err := worker.RefreshRoutes(ctx); err != nil {
		t.Fatal(err)
	}
	// gwB joins after the worker read its table, and holds a stream.
	tailRoutes(t, rdb, gwA.Keys(), "gwB")
	gwB := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: gwA.Keys(), Node: "gwB"})
	sid, err := gwB.Create(ctx, Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := gwB.OpenStream(ctx, sid, "websocket"); err != nil {
		t.Fatal(err)
	}
	batch := func(w bus.Write) error {
		_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error { return w(pipe) })
		return err
	}
	// A commit batch's step with the stale table fails and writes nothing.
	if err := batch(worker.DeliverWrite(sid, "3:::batch")); !IsRouteTableStale(err) {
		t.Fatalf("batch with a stale route table: %v, want ErrRouteTableStale", err)
	}
	// The store's own run reads the table again and delivers, once; then
	// a batch's step works too.
	if err := worker.Deliver(ctx, sid, "3:::run"); err != nil {
		t.Fatal(err)
	}
	if err := batch(worker.DeliverWrite(sid, "3:::batch2")); err != nil {
		t.Fatalf("batch with the table read anew: %v", err)
	}
	if got, want := deliveries(t, rdb, gwA.Keys().RouteStream(gwA.Keys().PartitionOf(sid), "gwB")), []string{"3:::run", "3:::batch2"}; !slices.Equal(got, want) {
		t.Fatalf("gwB's deliveries: %q, want %q", got, want)
	}
}

// A commit batch's step that routes, written while the store's route table
// is older than two refresh intervals, keeps the whole batch from being
// sent (bus.ErrRetryBatch, which the committer tries again), and asks for
// a refresh: the same batch then applies. On a Redis Cluster too.
func TestOldRouteTableHoldsTheBatch(t *testing.T) {
	for _, c := range []struct {
		name string
		rdb  func(t *testing.T) redis.UniversalClient
	}{
		{"redis", func(t *testing.T) redis.UniversalClient { return testredis.Start(t).Client(t) }},
		{"cluster", func(t *testing.T) redis.UniversalClient { return testredis.StartCluster(t, 3, 0).Client(t) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := c.rdb(t)
			keys := bus.NewKeys(fmt.Sprintf("t%d:", prefixSeq.Add(1)), 4)
			st := New(rdb, Config{Keys: keys, Node: "gwA", RouteRefresh: 50 * time.Millisecond})
			if err := st.Alive(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			for p := range keys.Partitions() {
				if err := bus.NewRouteReader(rdb, keys.RouteStream(p, "gwA"), bus.RouteReaderConfig{}).Open(ctx); err != nil {
					t.Fatal(err)
				}
			}
			sid, err := st.Create(ctx, Handshake{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil { // reads the table
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
			other := keys.Kick(sid) // a key another step of the batch writes, in the session's slot
			batch := func() error {
				_, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
					pipe.Set(ctx, other, "x", time.Minute)
					return st.DeliverWrite(sid, "3:::x")(pipe)
				})
				return err
			}
			if err := batch(); !errors.Is(err, bus.ErrRetryBatch) || !bus.Retryable(err) {
				t.Fatalf("batch with an old route table: %v, want bus.ErrRetryBatch", err)
			}
			if n := rdb.Exists(ctx, other).Val(); n != 0 {
				t.Fatal("the held batch's other step was applied")
			}
			deadline := time.Now().Add(2 * time.Second)
			for batch() != nil {
				if time.Now().After(deadline) {
					t.Fatal("the batch is still held: the table was not read again")
				}
				time.Sleep(10 * time.Millisecond)
			}
			stream := keys.RouteStream(keys.PartitionOf(sid), "gwA")
			msgs, err := rdb.XRange(ctx, stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				if r, err := bus.ParseRoute(fmt.Sprint(m.Values[bus.RouteField])); err == nil && r.Op == bus.OpDeliver {
					got = append(got, r.Packet)
				}
			}
			if !slices.Equal(got, []string{"3:::x"}) {
				t.Fatalf("gwA's deliveries: %q, want the one of the batch", got)
			}
		})
	}
}

// A gateway no routing set holds and no table lists is one the reapers
// forgot: messages to it are dropped, as XADD NOMKSTREAM drops them on its
// deleted route streams, and ending its session still cleans the
// partition's set of holders.
func TestRouteToForgottenGateway(t *testing.T) {
	ctx := context.Background()
	gwA, rdb := newStore(t, "gwA")
	tailRoutes(t, rdb, gwA.Keys(), "gwA")
	ghost := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: gwA.Keys(), Node: "ghost"})
	sid, err := ghost.Create(ctx, Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ghost.OpenStream(ctx, sid, "websocket"); err != nil {
		t.Fatal(err)
	}
	if err := gwA.Deliver(ctx, sid, "3:::x"); err != nil {
		t.Fatalf("deliver to a session of a forgotten gateway: %v", err)
	}
	if ok, err := gwA.End(ctx, sid, bus.ReasonServer, ""); err != nil || !ok {
		t.Fatalf("end: %v %v", ok, err)
	}
	p := gwA.Keys().PartitionOf(sid)
	if n, _ := rdb.SIsMember(ctx, gwA.Keys().StreamHolders(p), "ghost").Result(); n {
		t.Error("the forgotten gateway is still a holder of the partition")
	}
	if n, _ := rdb.Exists(ctx, gwA.Keys().RouteStream(p, "ghost")).Result(); n != 0 {
		t.Error("a route stream was made for the forgotten gateway")
	}
}

// Alive makes a node new to the cluster wait RouteJoinWaits route refreshes
// between the gateways set and the routing sets; a node the gateways set
// holds already (a restart in place) does not wait. A node missing from
// the routing sets (forgotten by the reapers, or Redis lost them) joins
// them when a script would make a session name it.
func TestAliveJoinsRoutingAfterTheTables(t *testing.T) {
	ctx := context.Background()
	_, rdb := newStore(t, "x")
	const refresh = 100 * time.Millisecond
	st := New(rdb, Config{Keys: bus.NewKeys(fmt.Sprintf("t%d:", prefixSeq.Add(1)), 4), Node: "gwN", RouteRefresh: refresh})
	k := st.Keys()
	inRouting := func() bool {
		t.Helper()
		for p := range k.Partitions() {
			if ok, err := rdb.SIsMember(ctx, k.RouteGateways(p), "gwN").Result(); err != nil || !ok {
				return false
			}
		}
		return true
	}
	// While it waits, its liveness key lives (renewed: the wait is longer
	// than the key's TTL), so no reaper takes it for dead.
	start := time.Now()
	alive := make(chan error, 1)
	go func() { alive <- st.Alive(ctx, 2*refresh) }()
	other := New(rdb, Config{Keys: k, Node: "other", RouteRefresh: refresh})
	for time.Since(start) < RouteJoinWaits*refresh-refresh/2 {
		time.Sleep(refresh / 4)
		expired, err := other.ExpiredGateways(ctx)
		if err != nil || slices.Contains(expired, "gwN") {
			t.Fatalf("during the join wait, expired gateways %q, %v", expired, err)
		}
	}
	if err := <-alive; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < RouteJoinWaits*refresh {
		t.Errorf("a new node joined after %v, want at least %v", took, RouteJoinWaits*refresh)
	}
	if !inRouting() {
		t.Fatal("not in every routing set after Alive")
	}
	start = time.Now()
	if err := st.Alive(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= refresh {
		t.Errorf("a known node waited %v", took)
	}
	// Forgotten (as reapGateway forgets), or Redis lost the sets: a renewal
	// puts the node back in the gateways set only, and the next poll (or
	// open) that would make a session name it joins the routing sets first.
	if err := rdb.SRem(ctx, k.Gateways(), "gwN").Err(); err != nil {
		t.Fatal(err)
	}
	for p := range k.Partitions() {
		rdb.SRem(ctx, k.RouteGateways(p), "gwN")
	}
	if _, err := st.Renew(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, _ := rdb.SIsMember(ctx, k.Gateways(), "gwN").Result(); !ok || inRouting() {
		t.Fatalf("after a renewal: in the gateways set %v (want true), in the routing sets %v (want false)", ok, inRouting())
	}
	sid, err := st.Create(ctx, Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := st.Poll(ctx, sid, "xhr-polling", "p1", "1", false); err != nil || r.Result != PollAnswer {
		t.Fatalf("poll: %+v %v", r, err)
	}
	if !inRouting() {
		t.Fatal("a poll naming the node did not make it join the routing sets")
	}
}

// deliveries returns the packets of the D route messages of a route stream.
func deliveries(t *testing.T, rdb *redis.Client, stream string) []string {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		r, err := bus.ParseRoute(fmt.Sprint(m.Values[bus.RouteField]))
		if err == nil && r.Op == bus.OpDeliver {
			out = append(out, r.Packet)
		}
	}
	return out
}
