package session

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// scriptNames names each script by the SHA1 of its source, as EVALSHA (and
// EVAL, hashed) shows it.
var scriptNames = map[string]string{
	openScript.Hash(): "open", pollScript.Hash(): "poll", releaseScript.Hash(): "release",
	touchScript.Hash(): "touch", endScript.Hash(): "end", deliverScript.Hash(): "deliver",
	joinScript.Hash(): "join", leaveScript.Hash(): "leave", reapDeadlinesScript.Hash(): "reap_deadlines",
	reapGatewayScript.Hash(): "reap_gateway", commitScript.Hash(): "commit", inboxScript.Hash(): "inbox",
	ackScript.Hash(): "ack", commitNodeScript.Hash(): "commit_node",
}

// oneNodeScripts run only where every partition is on one node
// (Config.PerPartition false: never on a Redis Cluster whose partitions are
// spread, TestPerPartitionWhereSpread), and touch the keys of every
// partition.
var oneNodeScripts = []string{"commit_node"}

// scriptSlots is what one script did in a workload: the most hash slots
// one run of it declared (KEYS) or touched together, and the keys it
// touched without declaring them.
type scriptSlots struct {
	most       int
	undeclared map[string]bool
}

// undeclaredToday lists the scripts that touch keys they do not declare
// (KEYS): none. Redis Cluster routes a script by its declared keys and
// lets it touch undeclared ones of the same slot, but every key a script
// touches is declared (docs/redis.md, "Declared keys"), and
// TestScriptSlots fails when a script touches one that is not.
var undeclaredToday []string

// Every session script is run (through the Store, as gateways and workers
// run them) under MONITOR; the keys each command of a script touched are
// asked of Redis (COMMAND GETKEYS) and hashed to their Redis Cluster slot
// (bus.Slot). No run of a script may touch keys of two slots (Redis
// Cluster refuses it: docs/redis.md, "Partitions and hash slots"), and the
// scripts that touch undeclared keys must be exactly undeclaredToday.
func TestScriptSlots(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	keys := bus.NewKeys("slots:", 4)
	// The per-partition scripts, as on a Redis Cluster whose partitions
	// are spread.
	st := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: keys, Node: "gwA", PerPartition: true})
	// The gateway's route stream exists (the scripts append to it only
	// then), and the partition streams have their consumer group.
	tailRoutes(t, rdb, keys, "gwA")
	for p := range keys.Partitions() {
		if err := rdb.XGroupCreateMkStream(ctx, keys.Stream(p), bus.GroupName, "$").Err(); err != nil {
			t.Fatal(err)
		}
	}
	stop := srv.Monitor(t)
	workload(t, st, rdb)
	runs := scriptRuns(t, rdb, stop())

	if got := slices.Sorted(maps.Keys(runs)); !slices.Equal(got, slices.Sorted(maps.Values(scriptNames))) {
		t.Errorf("scripts run %q, want every one", got)
	}
	var cross, undeclared []string
	for name, r := range runs {
		if r.most > 1 && !slices.Contains(oneNodeScripts, name) {
			cross = append(cross, name)
		}
		if len(r.undeclared) > 0 {
			undeclared = append(undeclared, name)
		}
		t.Logf("%-14s %d slots; undeclared: %q", name, r.most, slices.Sorted(maps.Keys(r.undeclared)))
	}
	slices.Sort(cross)
	slices.Sort(undeclared)
	if len(cross) > 0 {
		t.Errorf("scripts whose keys span several hash slots in one run: %q", cross)
	}
	if !slices.Equal(undeclared, undeclaredToday) {
		t.Errorf("scripts touching undeclared keys: %q, want %q (update undeclaredToday)", undeclared, undeclaredToday)
	}
}

// workload runs every session script at least once.
func workload(t *testing.T, st *Store, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pipe := nilPipe(t, rdb)
	// A websocket session and a polling one, in a room together.
	ws, err := st.Create(ctx, Handshake{})
	must(err)
	_, _, err = st.OpenStream(ctx, ws, "websocket")
	must(err)
	poll, err := st.Create(ctx, Handshake{})
	must(err)
	_, err = st.Poll(ctx, poll, "xhr-polling", "p1", "", false)
	must(err)
	must(st.Release(ctx, poll, "p1"))
	_, _, err = st.Touch(ctx, poll)
	must(err)
	// A polling POST before any GET opens its session (touch.lua).
	early, err := st.Create(ctx, Handshake{})
	must(err)
	_, err = st.TouchPost(ctx, early, Post{T: "1", Digest: "d", Transport: "jsonp-polling"})
	must(err)
	must(pipe(st.JoinWrite(poll, "/chat", "", false)))
	must(st.Deliver(ctx, poll, "3:::hi"))
	// The websocket's gateway is told of its joins and deliveries.
	must(pipe(st.JoinWrite(ws, "/chat", "", false)))
	must(st.Deliver(ctx, ws, "3:::hi"))
	must(pipe(st.LeaveWrite(ws, "/chat", bus.ReasonClient)))
	must(pipe(st.LeaveWrite(poll, "/chat", bus.ReasonClient)))
	must(pipe(st.AckWrite(&bus.Signal{Kind: bus.KindAck, SID: ws, MsgID: 1, Args: "[]"})))
	// A worker's commit of a signal, with effects on both sessions.
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: st.Keys().StreamFor(ws), Values: map[string]any{"x": "1"}}).Result()
	must(err)
	must(rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: bus.GroupName, Consumer: "w", Streams: []string{st.Keys().StreamFor(ws), ">"}, Count: 100}).Err())
	_, err = st.Apply(ctx, Commit{Stream: st.Keys().StreamFor(ws), Group: bus.GroupName, ID: id, Effects: []Effect{
		JoinEffect(ws, "", "r"), JoinEffect(poll, "", "r"), DeliverEffect(poll, "3:::x"),
		BroadcastEffect("", "r", ws, "3:::all"), AckEffect(ws, 7, "reply:x"), LeaveEffect(poll, "", "r"),
		LeaveNamespaceEffect(poll, "/chat", bus.ReasonServer, ""), EndEffect(poll, bus.ReasonServer, "0::"),
	}})
	must(err)
	// A worker's commit that only delivers (its sessions declared for
	// delivery only), one delivery overflowing a mailbox (40 bytes,
	// stored in the session by the store that created it), and the same
	// where every partition is on one node.
	small := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwA", PerPartition: true, MailboxBytes: 40})
	oneNode := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "w"})
	for _, worker := range []*Store{st, oneNode} {
		full, err := small.Create(ctx, Handshake{})
		must(err)
		_, err = small.Poll(ctx, full, "xhr-polling", "p3", "", false)
		must(err)
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: st.Keys().StreamFor(ws), Values: map[string]any{"x": "1"}}).Result()
		must(err)
		must(rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: bus.GroupName, Consumer: "w", Streams: []string{st.Keys().StreamFor(ws), ">"}, Count: 100}).Err())
		_, err = worker.Apply(ctx, Commit{Stream: st.Keys().StreamFor(ws), Group: bus.GroupName, ID: id, Effects: []Effect{
			DeliverEffect(ws, "3:::d"), DeliverEffect(full, "3:::"+strings.Repeat("x", 200)),
		}})
		must(err)
		if n := rdb.Exists(ctx, st.Keys().Session(full)).Val(); n != 0 {
			t.Fatal("a session whose mailbox overflowed outlived the commit")
		}
	}
	// Ends and reaps: a session whose deadline passed, a dead gateway's.
	gone, err := st.Create(ctx, Handshake{})
	must(err)
	_, err = st.Poll(ctx, gone, "xhr-polling", "p2", "", false)
	must(err)
	must(rdb.ZAdd(ctx, st.Keys().Deadlines(st.Keys().PartitionOf(gone)), redis.Z{Score: 1, Member: gone}).Err())
	_, err = st.ReapDeadlines(ctx, 10)
	must(err)
	ended, err := st.Create(ctx, Handshake{})
	must(err)
	_, _, err = st.OpenStream(ctx, ended, "websocket")
	must(err)
	_, err = st.End(ctx, ended, bus.ReasonServer, "")
	must(err)
	must(st.Alive(ctx, 50*time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	other := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwB", PerPartition: true})
	n, err := other.ReapGateways(ctx, 100, 0)
	must(err)
	if n != 1 {
		t.Fatalf("reaped %d sessions of the dead gateway, want its websocket", n)
	}
	// Where every partition is on one node, a commit is one script.
	_, err = oneNode.Apply(ctx, Commit{Effects: []Effect{DeliverEffect(ws, "3:::n"), BroadcastEffect("", "", "", "3:::all")}})
	must(err)
}

// A Store runs a commit per partition exactly where one command may not
// name two partitions' keys: on a Redis Cluster whose partitions are in
// different hash slots.
func TestPerPartitionWhereSpread(t *testing.T) {
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	one := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer one.Close()
	for _, c := range []struct {
		rdb  redis.UniversalClient
		keys bus.Keys
		want bool
	}{
		{cluster, bus.NewKeys("rt:", 16), true},
		{cluster, bus.NewKeys("{rt}:", 16), false}, // a hash tag in the prefix: one slot
		{one, bus.NewKeys("rt:", 16), false},
	} {
		if got := New(c.rdb, Config{RouteRefresh: testRouteRefresh, Keys: c.keys, Node: "n"}).Config().PerPartition; got != c.want {
			t.Errorf("%T, prefix %q: PerPartition %v, want %v", c.rdb, c.keys.Prefix(), got, c.want)
		}
	}
}

// scriptRuns groups the monitored commands by the script that ran them
// and hashes their keys to slots.
func scriptRuns(t *testing.T, rdb *redis.Client, cmds []testredis.Command) map[string]*scriptSlots {
	t.Helper()
	ctx := context.Background()
	runs := map[string]*scriptSlots{}
	var cur *scriptSlots
	var declared map[string]bool
	var slots map[int]bool // of the current run
	for _, c := range cmds {
		if !c.Lua {
			cur = nil
			name, keys, ok := scriptInvocation(t, c.Args)
			if !ok {
				continue
			}
			cur = runs[name]
			if cur == nil {
				cur = &scriptSlots{undeclared: map[string]bool{}}
				runs[name] = cur
			}
			declared, slots = map[string]bool{}, map[int]bool{}
			for _, k := range keys {
				declared[k] = true
				slots[bus.Slot(k)] = true
			}
			cur.most = max(cur.most, len(slots))
			continue
		}
		if cur == nil {
			t.Fatalf("a script's command %q without its EVAL", c.Args)
		}
		args := make([]any, 0, 2+len(c.Args))
		args = append(args, "COMMAND", "GETKEYS")
		for _, a := range c.Args {
			args = append(args, a)
		}
		keys, err := rdb.Do(ctx, args...).StringSlice()
		if err != nil {
			if strings.Contains(err.Error(), "no key arguments") || strings.Contains(err.Error(), "not a key") {
				continue
			}
			t.Fatalf("COMMAND GETKEYS %q: %v", c.Args, err)
		}
		for _, k := range keys {
			slots[bus.Slot(k)] = true
			cur.most = max(cur.most, len(slots))
			if !declared[k] {
				cur.undeclared[k] = true
			}
		}
	}
	return runs
}

// scriptInvocation returns the script an EVAL or EVALSHA ran and the keys it
// declared; ok is false for other commands.
func scriptInvocation(t *testing.T, args []string) (name string, keys []string, ok bool) {
	t.Helper()
	if len(args) < 3 {
		return "", nil, false
	}
	var sha string
	switch strings.ToLower(args[0]) {
	case "evalsha":
		sha = args[1]
	case "eval":
		h := sha1.Sum([]byte(args[1]))
		sha = hex.EncodeToString(h[:])
	default:
		return "", nil, false
	}
	name, known := scriptNames[sha]
	if !known {
		t.Fatalf("a script that is none of the session scripts: %.80q", args[1])
	}
	n, err := strconv.Atoi(args[2])
	if err != nil || 3+n > len(args) {
		t.Fatal(fmt.Errorf("%s: numkeys %q", name, args[2]))
	}
	return name, args[3 : 3+n], true
}

// No script builds a key name: its assembled source (with the lib.lua
// helpers it uses) spells no key pattern's head and concatenates nothing
// onto a key it was given (KEYS[i] .. or KDL ..), so every key it touches
// is one its caller declared (docs/redis.md, "Declared keys"; a key built
// at run time is also caught by TestScriptSlots when its workload gets
// there).
func TestScriptsBuildNoKeyNames(t *testing.T) {
	concat := regexp.MustCompile(`(KEYS\[[^]]*\]|KDL|\.s|\.mb|\.sig)\s*\.\.`)
	for _, name := range slices.Sorted(maps.Values(scriptNames)) {
		src := luaComment.ReplaceAllString(luaSource(name), "")
		if m := concat.FindString(src); m != "" {
			t.Errorf("%s builds a key name from a key: %q", name, m)
		}
		for _, p := range bus.KeyPatterns() {
			if len(p.Head) > 2 && strings.Contains(src, "'"+p.Head) {
				t.Errorf("%s spells key %s", name, p.Doc())
			}
		}
	}
}
