package session

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// A commit whose broadcast reaches a polling member its caller did not
// declare (one that joined the room after the caller read its members)
// writes nothing, not even the XACK, and answers that its sessions are
// stale; with the members read, the same commit applies.
func TestBroadcastToUndeclaredMember(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	st.cfg.PerPartition = true
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
	if err := rdb.XGroupCreateMkStream(ctx, stream, bus.GroupName, "0").Err(); err != nil {
		t.Fatal(err)
	}
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"x": "1"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: bus.GroupName, Consumer: "w", Streams: []string{stream, ">"}}).Err(); err != nil {
		t.Fatal(err)
	}
	mailbox := func() []string { return rdb.LRange(ctx, k.Mailbox(m), 0, -1).Val() }
	pending := func() int64 { return rdb.XPending(ctx, stream, bus.GroupName).Val().Count }
	before, pendingBefore := mailbox(), pending()
	commit := []scriptCommit{{stream: stream, group: bus.GroupName, id: id,
		effects: []partEffect{{BroadcastEffect("", "r", "", "3:::all"), strconv.Itoa(p)}}}}

	// Declared without the room's members.
	call := &scriptCall{script: commitScript, part: p, keys: []string{k.Deadlines(p), k.Outbox(p)},
		args: st.commitArgs(p, commit), decl: &declaration{}}
	st.evalAll(ctx, []*scriptCall{call})
	if err := call.cmd.Err(); !isReply(err, sessionsStaleReply) {
		t.Fatalf("commit with an undeclared member: %v, want %s", err, sessionsStaleReply)
	}
	if got := mailbox(); !slices.Equal(got, before) {
		t.Errorf("mailbox %q after the refused commit, want %q", got, before)
	}
	if n := pending(); n != pendingBefore {
		t.Errorf("%d entries pending after the refused commit, want %d (no XACK)", n, pendingBefore)
	}

	// Declared as Apply declares it: the room's members read first.
	call = &scriptCall{script: commitScript, part: p, keys: []string{k.Deadlines(p), k.Outbox(p)},
		args: st.commitArgs(p, commit), decl: &declaration{rooms: []declaredRoom{{p, "", "r"}}}}
	st.evalAll(ctx, []*scriptCall{call})
	if n, _, err := parseCommitReply(call.cmd); err != nil || n != 1 {
		t.Fatalf("commit with the members read: %d, %v", n, err)
	}
	if got := mailbox(); len(got) != len(before)+1 || got[len(got)-1] != "3:::all" {
		t.Errorf("mailbox %q, want the broadcast after %q", got, before)
	}
	if n := pending(); n != pendingBefore-1 {
		t.Errorf("%d entries pending after the commit, want %d", n, pendingBefore-1)
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
