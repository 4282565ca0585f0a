package session

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// A commit names only sessions its caller declared: a broadcast reaches
// the polling members of its room read before the script (one that joined
// since is skipped: the join and the broadcast were concurrent), and an
// effect on an undeclared session makes the script write nothing, not
// even the XACK, and answer that its sessions are stale.
func TestCommitNamesDeclaredSessionsOnly(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	tailRoutes(t, rdb, st.Keys(), "gwA")
	k := st.Keys()
	m, err := st.Create(ctx, Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Poll(ctx, m, "xhr-polling", "p1", "1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, Commit{Effects: []Effect{JoinEffect(m, "", "r")}}); err != nil {
		t.Fatal(err)
	}
	p := k.PartitionOf(m)
	stream := k.Stream(p)
	if err := rdb.XGroupCreateMkStream(ctx, stream, bus.GroupName, "$").Err(); err != nil {
		t.Fatal(err)
	}
	entry := func() string {
		t.Helper()
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"x": "1"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: bus.GroupName, Consumer: "w", Streams: []string{stream, ">"}}).Err(); err != nil {
			t.Fatal(err)
		}
		return id
	}
	mailbox := func() []string { return rdb.LRange(ctx, k.Mailbox(m), 0, -1).Val() }
	pending := func() int64 { return rdb.XPending(ctx, stream, bus.GroupName).Val().Count }
	commit := func(id string, e Effect, decl *declaration) *redis.Cmd {
		t.Helper()
		call := st.commitCall(p, []scriptCommit{{stream: stream, group: bus.GroupName, id: id,
			effects: []partEffect{{e, strconv.Itoa(p)}}}}, decl)
		st.evalAll(ctx, []*scriptCall{call})
		return call.cmd
	}
	before := mailbox()

	// A delivery to a session not declared: nothing written.
	id := entry()
	if err := commit(id, DeliverEffect(m, "3:::one"), &declaration{}).Err(); !isReply(err, sessionsStaleReply) {
		t.Fatalf("a delivery to an undeclared session: %v, want %s", err, sessionsStaleReply)
	}
	if got, n := mailbox(), pending(); !slices.Equal(got, before) || n != 1 {
		t.Fatalf("after the refused commit: mailbox %q (want %q), %d pending (want 1: no XACK)", got, before, n)
	}
	// A broadcast whose room's members were not read: applied, the
	// member skipped.
	if r, err := parseCommitReply(commit(id, BroadcastEffect("", "r", "", "3:::all"), &declaration{})); err != nil || r.applied != 1 {
		t.Fatalf("broadcast without the members read: %d, %v", r.applied, err)
	}
	if got := mailbox(); !slices.Equal(got, before) {
		t.Errorf("mailbox %q after a broadcast that did not declare the member, want %q", got, before)
	}
	// As Apply declares it: the members read first.
	id = entry()
	if r, err := parseCommitReply(commit(id, BroadcastEffect("", "r", "", "3:::all"),
		&declaration{rooms: []declaredRoom{{p, "", "r"}}})); err != nil || r.applied != 1 {
		t.Fatalf("broadcast with the members read: %d, %v", r.applied, err)
	}
	if got := mailbox(); len(got) != len(before)+1 || got[len(got)-1] != "3:::all" {
		t.Errorf("mailbox %q, want the broadcast after %q", got, before)
	}
	if n := pending(); n != 0 {
		t.Errorf("%d entries pending, want 0", n)
	}
}

func TestUnpackEffects(t *testing.T) {
	for _, tc := range []struct {
		packed string
		want   []Effect
		bad    bool
	}{
		{packed: "", want: nil},
		{packed: "1:d1:22:ab5:3:::x", want: []Effect{DeliverEffect("ab", "3:::x")}},
		{packed: "1:b1:40:1:r0:0:1:d1:25:s:i:d7:3:::x:y", want: []Effect{BroadcastEffect("", "r", "", ""), DeliverEffect("s:i:d", "3:::x:y")}},
		{packed: "1:d", bad: true},                  // no count
		{packed: "1:d1:3", bad: true},               // too few arguments
		{packed: "2:dd1:12:ab", bad: true},          // op of two bytes
		{packed: "1:d1:02:ab", bad: true},           // no argument
		{packed: "9:d", bad: true},                  // length past the end
		{packed: "x:d", bad: true},                  // length not a number
		{packed: "1:d1:x2:ab", bad: true},           // count not a number
		{packed: "-1:d1:12:ab", bad: true},          // negative length
		{packed: "1:d1:12:ab1:", bad: true},         // trailing field
		{packed: "1:d1:12:ab1:e", bad: true},        // trailing op
		{packed: "1:d1:22:ab5:3:::x1:x", bad: true}, // trailing op with nothing
	} {
		got, err := unpackEffects(tc.packed)
		if tc.bad {
			if !errors.Is(err, ErrBadOutbox) {
				t.Errorf("unpackEffects(%q) = %v, %v; want ErrBadOutbox", tc.packed, got, err)
			}
			continue
		}
		if err != nil || !slices.EqualFunc(got, tc.want, func(a, b Effect) bool { return a.op == b.op && slices.Equal(a.args, b.args) }) {
			t.Errorf("unpackEffects(%q) = %v, %v; want %v", tc.packed, got, err, tc.want)
		}
	}
}

func FuzzUnpackEffects(f *testing.F) {
	for _, s := range []string{"", "1:d1:22:ab5:3:::x", "1:b1:40:1:r0:0:", "9:d", "1:d1:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, packed string) {
		effects, err := unpackEffects(packed)
		if err != nil {
			return
		}
		for _, e := range effects {
			if len(e.args) == 0 {
				t.Fatalf("%q: an effect without arguments", packed)
			}
		}
	})
}

// A session a commit declares for delivery only cannot be ended by the
// script when its mailbox overflows (MailboxBytes 40, hard bound 160): it
// is marked, dropped from, and listed in the reply, and Apply ends it at
// once. When its caller does not (a worker killed after the script), its
// deadline, set in the past and kept there, has the reaper end it with
// reason overflow; a delivery that declares all its keys (Store.Deliver)
// or a stream opened for it ends it too.
func TestOverflowOfASessionDeclaredForDelivery(t *testing.T) {
	ctx := context.Background()
	big := "3:::" + strings.Repeat("x", 200)
	// commit runs commit_node.lua as Apply does, without ending what
	// overflowed.
	commit := func(t *testing.T, st *Store, sid, packet string) commitReply {
		t.Helper()
		call, err := st.nodeCall([]Commit{{Effects: []Effect{DeliverEffect(sid, packet)}}})
		if err != nil {
			t.Fatal(err)
		}
		st.evalAll(ctx, []*scriptCall{call})
		r, err := parseCommitReply(call.cmd)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("Apply ends it", func(t *testing.T) {
		st, rdb, sid := openPolling(t)
		if _, err := st.Apply(ctx, Commit{Effects: []Effect{DeliverEffect(sid, big)}}); err != nil {
			t.Fatal(err)
		}
		if got := kinds(signals(t, rdb, st.Keys(), sid)); !slices.Equal(got, []string{"connect()", "disconnect()overflow"}) {
			t.Fatalf("signals = %q", got)
		}
	})
	t.Run("the reaper ends what its caller did not", func(t *testing.T) {
		st, rdb, sid := openPolling(t)
		k := st.Keys()
		if r := commit(t, st, sid, big); !slices.Equal(r.overflowed, []string{sid}) {
			t.Fatalf("overflowed %q, want %q", r.overflowed, sid)
		}
		before := rdb.LRange(ctx, k.Mailbox(sid), 0, -1).Val()
		if r := commit(t, st, sid, "3:::late"); len(r.overflowed) != 0 {
			t.Fatalf("a marked session listed again: %q", r.overflowed)
		}
		if got := rdb.LRange(ctx, k.Mailbox(sid), 0, -1).Val(); !slices.Equal(got, before) {
			t.Fatalf("mailbox %q after a delivery to a marked session, want %q", got, before)
		}
		// Polls go on (the client gets what is queued) but do not move
		// the deadline.
		if _, err := st.Poll(ctx, sid, "xhr-polling", "p1", "1", false); err != nil {
			t.Fatal(err)
		}
		if dl := rdb.ZScore(ctx, k.Deadlines(k.PartitionOf(sid)), sid).Val(); dl != 0 {
			t.Fatalf("deadline %v, want 0", dl)
		}
		if got := kinds(signals(t, rdb, k, sid)); !slices.Equal(got, []string{"connect()"}) {
			t.Fatalf("signals before the reaper = %q", got)
		}
		if r, err := st.ReapDeadlines(ctx, 100); err != nil || r != (Reaped{Overflow: 1}) {
			t.Fatalf("ReapDeadlines = %+v, %v; want one overflow", r, err)
		}
		if got := kinds(signals(t, rdb, k, sid)); !slices.Equal(got, []string{"connect()", "disconnect()overflow"}) {
			t.Fatalf("signals = %q", got)
		}
	})
	t.Run("a delivery that declares all its keys ends it", func(t *testing.T) {
		st, rdb, sid := openPolling(t)
		if r := commit(t, st, sid, big); !slices.Equal(r.overflowed, []string{sid}) {
			t.Fatalf("overflowed %q, want %q", r.overflowed, sid)
		}
		if err := st.Deliver(ctx, sid, "3:::x"); !errors.Is(err, ErrOverflow) {
			t.Fatalf("Deliver: %v, want ErrOverflow", err)
		}
		if got := kinds(signals(t, rdb, st.Keys(), sid)); !slices.Equal(got, []string{"connect()", "disconnect()overflow"}) {
			t.Fatalf("signals = %q", got)
		}
	})
	t.Run("a stream opened for it ends it", func(t *testing.T) {
		st, rdb := newStore(t, "gwA")
		sid, _ := st.Create(ctx, Handshake{})
		if r := commit(t, st, sid, big); !slices.Equal(r.overflowed, []string{sid}) {
			t.Fatalf("overflowed %q, want %q", r.overflowed, sid)
		}
		if _, _, err := st.OpenStream(ctx, sid, "websocket"); !errors.Is(err, ErrUnknownSession) {
			t.Fatalf("OpenStream: %v, want ErrUnknownSession", err)
		}
		if n := rdb.Exists(ctx, st.Keys().Session(sid)).Val(); n != 0 {
			t.Fatal("the session outlived its stream's open")
		}
	})
}
