package session

import (
	"context"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// On a Redis Cluster of three primaries, with a prefix without a hash tag
// (so the partitions spread over the primaries), the session scripts, a
// worker's commit with effects on other partitions (through the outbox),
// and the counts and listings that walk the partitions all work: no
// command or script of theirs spans two slots.
func TestSessionsOnSpreadCluster(t *testing.T) {
	c := testredis.StartCluster(t, 3, 0)
	rdb := c.Client(t)
	ctx := context.Background()
	k := bus.NewKeys("spread:", 16)
	st := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: k, Node: "gwA"})
	var streams []string
	primaries := map[*testredis.ClusterNode]bool{}
	for range 24 {
		sid, err := st.Create(ctx, Handshake{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, sid)
		primaries[c.PrimaryFor(t, k.Session(sid))] = true
	}
	if len(primaries) < 2 {
		t.Fatalf("24 sessions on %d primaries", len(primaries))
	}
	var joins []Effect
	for _, sid := range streams {
		joins = append(joins, JoinEffect(sid, "", "r"))
	}
	if _, err := st.Apply(ctx, Commit{Effects: joins}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.CountRoom(ctx, "", "r"); err != nil || n != int64(len(streams)) {
		t.Fatalf("CountRoom = %d, %v; want %d", n, err, len(streams))
	}
	var listed []string
	for cursor := uint64(0); ; {
		ids, next, err := st.SessionsPage(ctx, "", "r", cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, ids...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(listed)
	if want := slices.Sorted(slices.Values(streams)); !slices.Equal(listed, want) {
		t.Fatalf("SessionsPage listed %d sessions, want the %d", len(listed), len(want))
	}
	var rooms []string
	for cursor := uint64(0); ; {
		page, next, err := st.RoomsPage(ctx, "", cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	if !slices.Equal(rooms, []string{"r"}) {
		t.Fatalf("RoomsPage over every primary = %q, want r once", rooms)
	}

	// A worker's commit of a signal of a, delivering to a polling session
	// on another primary: through a's outbox, applied there.
	a := streams[0]
	var b string
	for range 100 {
		sid, _ := st.Create(ctx, Handshake{})
		if c.PrimaryFor(t, k.Session(sid)) != c.PrimaryFor(t, k.Session(a)) {
			b = sid
			break
		}
	}
	if b == "" {
		t.Fatal("no session on another primary than a's")
	}
	stream := k.StreamFor(a)
	if err := rdb.XGroupCreateMkStream(ctx, stream, "g", "$").Err(); err != nil {
		t.Fatal(err)
	}
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"x", "1"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "w", Streams: []string{stream, ">"}}).Err(); err != nil {
		t.Fatal(err)
	}
	commit := Commit{Stream: stream, Group: "g", ID: id, Effects: []Effect{DeliverEffect(b, "3:::x"), DeliverEffect(b, "3:::y")}}
	for range 2 {
		if n, err := st.Apply(ctx, commit); err != nil {
			t.Fatal(err)
		} else if n > 1 {
			t.Fatalf("applied %d commits", n)
		}
	}
	if got, _ := rdb.LRange(ctx, k.Mailbox(b), 0, -1).Result(); !slices.Equal(got, []string{"3:::x", "3:::y"}) {
		t.Fatalf("b's mailbox %q", got)
	}
	if n, _ := rdb.XLen(ctx, k.Outbox(k.PartitionOf(a))).Result(); n != 0 {
		t.Fatalf("%d entries left in a's outbox", n)
	}
	if r, err := st.ReapDeadlines(ctx, 100); err != nil || r.Total() != 0 {
		t.Fatalf("ReapDeadlines = %+v, %v", r, err)
	}
	if _, err := st.Counts(ctx); err != nil {
		t.Fatal(err)
	}
}
