package session

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Effects a commit on one partition makes on another's session go through
// the partition's outbox and are applied there exactly once and in order,
// whether the drain that applies them is repeated, interrupted after the
// inbox applied them, or never came (a later drain does it).
func TestOutboxAppliesOnce(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	k := st.Keys()
	a, _ := st.Create(ctx, Handshake{})
	var b string
	for range 100 {
		if sid, _ := st.Create(ctx, Handshake{}); k.PartitionOf(sid) != k.PartitionOf(a) {
			b = sid
			break
		}
	}
	if b == "" {
		t.Fatal("no session in another partition")
	}
	pa, pb := k.PartitionOf(a), k.PartitionOf(b)
	// commit runs commit.lua on a's partition, as a worker's commit of a
	// signal of a does, without the drain Apply does after it.
	commit := func(packets ...string) []outboxEntry {
		t.Helper()
		var effects []partEffect
		for _, pk := range packets {
			effects = append(effects, partEffect{DeliverEffect(b, pk), strconv.Itoa(pb)})
		}
		call := st.commitCall(pa, []scriptCommit{{effects: effects}}, &declaration{})
		st.evalAll(ctx, []*scriptCall{call})
		r, err := parseCommitReply(call.cmd)
		if err != nil || r.applied != 1 {
			t.Fatalf("commit: %d, %v", r.applied, err)
		}
		return r.outbox
	}
	mailbox := func() []string {
		t.Helper()
		got, err := rdb.LRange(ctx, k.Mailbox(b), 0, -1).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		return got
	}
	first := commit("3:::1", "3:::2")
	entries := commit("3:::3")
	if len(first) != 1 || len(entries) != 2 || entries[0].id != first[0].id || entries[1].to != pb {
		t.Fatalf("outbox entries %+v after %+v", entries, first)
	}
	if got := mailbox(); len(got) != 0 {
		t.Fatalf("delivered before the outbox was applied: %q", got)
	}
	// The first entry is applied on b's partition, and the drainer dies
	// before it deletes it from the outbox.
	inbox := &scriptCall{script: inboxScript, parts: []int{pb}, keys: []string{k.Deadlines(pb), k.Inbox(pb)},
		args: st.args("", pa, first[0].id, first[0].effects), decl: fullDeclaration([]string{b})}
	st.evalAll(ctx, []*scriptCall{inbox})
	if v, err := inbox.cmd.Slice(); err != nil || len(v) != 2 || v[0] != int64(1) {
		t.Fatalf("inbox: %v, %v", v, err)
	}
	for range 2 {
		if _, err := st.DrainOutbox(ctx, pa); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := mailbox(), []string{"3:::1", "3:::2", "3:::3"}; !slices.Equal(got, want) {
		t.Fatalf("mailbox %q, want %q: each effect once, in order", got, want)
	}
	if n, _ := rdb.XLen(ctx, k.Outbox(pa)).Result(); n != 0 {
		t.Errorf("%d entries left in the outbox", n)
	}
	// Apply drains at once: a commit's remote effects are applied when it
	// returns.
	if _, err := st.Apply(ctx, Commit{Effects: []Effect{DeliverEffect(b, "3:::4")}}); err != nil {
		t.Fatal(err)
	}
	id, _ := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.StreamFor(a), Values: []any{"x", "1"}}).Result()
	if err := rdb.XGroupCreate(ctx, k.StreamFor(a), "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{k.StreamFor(a), ">"}}).Err(); err != nil {
		t.Fatal(err)
	}
	signal := Commit{Stream: k.StreamFor(a), Group: "g", ID: id, Effects: []Effect{DeliverEffect(b, "3:::5"), DeliverEffect(a, "3:::a")}}
	for range 2 { // a retried commit applies nothing twice
		if _, err := st.Apply(ctx, signal); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := mailbox(), []string{"3:::1", "3:::2", "3:::3", "3:::4", "3:::5"}; !slices.Equal(got, want) {
		t.Fatalf("mailbox %q, want %q", got, want)
	}
	if n, _ := rdb.XLen(ctx, k.Outbox(pa)).Result(); n != 0 {
		t.Errorf("%d entries left in the outbox after Apply", n)
	}
}
