package session

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// contract runs the scripts against a real Redis and captures what they
// append to the route streams of its gateways and to the partition streams,
// and what they publish on reply channels, step by step.
type contract struct {
	t       *testing.T
	rdb     *redis.Client
	keys    bus.Keys
	nodes   []string // the gateways, registered in <P>gws with their route streams open
	msgs    <-chan *redis.Message
	last    map[string]string // stream -> last entry id read
	ops     map[bus.Op]bool   // route ops seen
	kinds   map[bus.Kind]bool // signal kinds seen
	replies int
	step    int
}

func newContract(t *testing.T, rdb *redis.Client, keys bus.Keys, nodes ...string) *contract {
	ctx := context.Background()
	sub := rdb.PSubscribe(ctx, keys.ReplyChannel("*"), keys.Prefix()+"test-sentinel")
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	c := &contract{t: t, rdb: rdb, keys: keys, nodes: nodes, msgs: sub.Channel(redis.WithChannelSize(1000)),
		last: map[string]string{}, ops: map[bus.Op]bool{}, kinds: map[bus.Kind]bool{}}
	for _, node := range nodes {
		for p := range keys.Partitions() {
			r := bus.NewRouteReader(rdb, keys.RouteStream(p, node), bus.RouteReaderConfig{})
			if err := r.Open(ctx); err != nil {
				t.Fatal(err)
			}
			c.last[keys.RouteStream(p, node)] = fmt.Sprintf("0-%d", r.Last())
		}
		if err := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: keys, Node: node}).Alive(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// message is one message expected: a route stream entry (a route message,
// a batch when it holds more than one route) or a reply on a reply
// channel. A route's Time of -1 stands for "when the step ran".
type message struct {
	channel string // a route stream or a reply channel
	routes  []bus.Route
	reply   *bus.Reply
}

// captured is one message a step wrote.
type captured struct{ channel, payload string }

// check runs one step and asserts that it appended exactly msgs to the
// route streams (in order per stream, each entry's id the one after the
// last) and published the replies among msgs (in order), and appended
// exactly sigs to the partition streams (in order per session), each
// decoded by pkg/bus. A signal's zero Time stands for "when the step ran".
func (c *contract) check(name string, step func() error, msgs []message, sigs []bus.Signal) {
	c.t.Helper()
	ctx := context.Background()
	c.step++
	from := time.Now().UnixMilli()
	if err := step(); err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	to := time.Now().UnixMilli()
	inWindow := func(ms int64) bool { return ms >= from && ms <= to }

	// Appended to route streams, gateway by gateway, then published:
	// everything before the sentinel this step publishes last.
	var got []captured
	order := map[string]int{}
	for _, node := range c.nodes {
		for p := range c.keys.Partitions() {
			stream := c.keys.RouteStream(p, node)
			order[stream] = len(order) + 1
			entries, err := c.rdb.XRange(ctx, stream, "("+c.last[stream], "+").Result()
			if err != nil {
				c.t.Fatal(err)
			}
			for _, e := range entries {
				prev, _ := bus.ParseRouteSeq(c.last[stream])
				if seq, err := bus.ParseRouteSeq(e.ID); err != nil || seq != prev+1 {
					c.t.Errorf("%s: route stream entry %s after %s (%v)", name, e.ID, c.last[stream], err)
				}
				c.last[stream] = e.ID
				msg, _ := e.Values[bus.RouteField].(string)
				got = append(got, captured{stream, msg})
			}
		}
	}
	sentinel := fmt.Sprintf("step %d", c.step)
	if err := c.rdb.Publish(ctx, c.keys.Prefix()+"test-sentinel", sentinel).Err(); err != nil {
		c.t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case m := <-c.msgs:
			if m.Payload == sentinel {
				done = true
				break
			}
			got = append(got, captured{m.Channel, m.Payload})
		case <-time.After(5 * time.Second):
			c.t.Fatalf("%s: no sentinel after %d messages", name, len(got))
		}
	}
	// Expected in the same order: route streams by gateway, then replies.
	msgs = slices.Clone(msgs)
	slices.SortStableFunc(msgs, func(a, b message) int {
		oa, ob := order[a.channel], order[b.channel]
		if oa == 0 {
			oa = len(order) + 1
		}
		if ob == 0 {
			ob = len(order) + 1
		}
		return oa - ob
	})
	if len(got) != len(msgs) {
		var s []string
		for _, m := range got {
			s = append(s, fmt.Sprintf("%s %q", m.channel, m.payload))
		}
		c.t.Fatalf("%s: wrote %d messages, want %d: %s", name, len(got), len(msgs), strings.Join(s, ", "))
	}
	for i, m := range got {
		want := msgs[i]
		if m.channel != want.channel {
			c.t.Errorf("%s: message %d on %q, want %q", name, i, m.channel, want.channel)
		}
		if want.reply != nil {
			r, err := bus.ParseReply(m.payload)
			if err != nil || r != *want.reply {
				c.t.Errorf("%s: reply %q parses as %#v, %v; want %#v", name, m.payload, r, err, *want.reply)
			}
			c.replies++
			continue
		}
		if batch := strings.HasPrefix(m.payload, "M\n"); batch != (len(want.routes) > 1) {
			c.t.Errorf("%s: message %q: batch %v, want %d routes", name, m.payload, batch, len(want.routes))
		} else if batch {
			c.ops[bus.OpBatch] = true
		}
		var routes []bus.Route
		err := bus.EachRoute(m.payload, func(msg string) {
			r, err := bus.ParseRoute(msg)
			if err != nil {
				c.t.Errorf("%s: route %q: %v", name, msg, err)
			}
			routes = append(routes, r)
		})
		if err != nil {
			c.t.Errorf("%s: message %q: %v", name, m.payload, err)
		}
		if len(routes) != len(want.routes) {
			c.t.Errorf("%s: message %q holds %d routes, want %d", name, m.payload, len(routes), len(want.routes))
			continue
		}
		for j, r := range routes {
			w := want.routes[j]
			if w.Time == -1 {
				if !inWindow(r.Time) {
					c.t.Errorf("%s: route %c routed at %d, not in [%d, %d]", name, r.Op, r.Time, from, to)
				}
				w.Time = r.Time
			}
			if r != w {
				c.t.Errorf("%s: route %#v, want %#v", name, r, w)
			}
			c.ops[r.Op] = true
		}
	}

	// Appended: the entries after those read at the previous step.
	bySID := map[string][]bus.Signal{}
	for p := range c.keys.Partitions() {
		stream := c.keys.Stream(p)
		start := "-"
		if id, ok := c.last[stream]; ok {
			start = "(" + id
		}
		entries, err := c.rdb.XRange(ctx, stream, start, "+").Result()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, e := range entries {
			c.last[stream] = e.ID
			s, err := bus.ParseSignal(e.ID, e.Values)
			if err != nil {
				c.t.Errorf("%s: entry %s of %s: %v", name, e.ID, stream, err)
				continue
			}
			if want := c.keys.StreamFor(s.SID); stream != want {
				c.t.Errorf("%s: signal of %s on %s, want %s", name, s.SID, stream, want)
			}
			if !inWindow(s.Time.UnixMilli()) {
				c.t.Errorf("%s: signal written at %v, not in [%d, %d]", name, s.Time.UnixMilli(), from, to)
			}
			s.ID, s.Time = "", time.Time{}
			bySID[s.SID] = append(bySID[s.SID], s)
			c.kinds[s.Kind] = true
		}
	}
	wantBySID := map[string][]bus.Signal{}
	for _, s := range sigs {
		wantBySID[s.SID] = append(wantBySID[s.SID], s)
	}
	for _, sid := range slices.Sorted(maps.Keys(wantBySID)) {
		if !slices.Equal(bySID[sid], wantBySID[sid]) {
			c.t.Errorf("%s: signals of %s:\n got %+v\nwant %+v", name, sid, bySID[sid], wantBySID[sid])
		}
	}
	for _, sid := range slices.Sorted(maps.Keys(bySID)) {
		if _, ok := wantBySID[sid]; !ok {
			c.t.Errorf("%s: unexpected signals of %s: %+v", name, sid, bySID[sid])
		}
	}
}

// The contract between the scripts and pkg/bus: every route message a
// script publishes decodes with bus.EachRoute and bus.ParseRoute into what
// the script meant, every entry it appends decodes with bus.ParseSignal,
// and the reply message decodes with bus.ParseReply (the worker's
// decoder). The steps make the scripts publish every route kind they
// write (D, W, K, C, J, L, B and batches, M) and every signal kind.
func TestScriptsSpeakBusFormats(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	cfg := st.Config()
	cfg.Node = "gwB"
	stB := New(rdb, cfg)
	cfg.Node = "gwC"
	stC := New(rdb, cfg)
	k := st.Keys()
	c := newContract(t, rdb, k, "gwA", "gwB", "gwC")
	// The route stream of gateway node for the partition of session sid.
	rs := func(node, sid string) string { return k.RouteStream(k.PartitionOf(sid), node) }
	const now = -1
	route := func(r bus.Route) []bus.Route { return []bus.Route{r} }
	sig := func(kind bus.Kind, sid, ns, gw string) bus.Signal {
		return bus.Signal{Kind: kind, SID: sid, NS: ns, Gateway: gw}
	}
	pipe := nilPipe(t, rdb)

	// A streaming session: open.lua, deliver.lua, join.lua, leave.lua.
	a, _ := st.Create(ctx, Handshake{})
	c.check("open", func() error { _, _, err := st.OpenStream(ctx, a, "websocket"); return err }, nil,
		[]bus.Signal{{Kind: bus.KindConnect, SID: a, Gateway: "gwA", Transport: "websocket"}})
	c.check("deliver to a stream", func() error { return st.Deliver(ctx, a, "3:::x\ny") },
		[]message{{channel: rs("gwA", a), routes: route(bus.Route{Op: bus.OpDeliver, SID: a, Packet: "3:::x\ny", Time: now})}}, nil)
	c.check("open elsewhere", func() error { _, _, err := stB.OpenStream(ctx, a, "websocket"); return err },
		[]message{{channel: rs("gwA", a), routes: route(bus.Route{Op: bus.OpClose, SID: a, Arg: "replaced"})}}, nil)
	c.check("join a namespace", func() error { return pipe(stB.JoinWrite(a, "/chat", "?q=1", false)) },
		[]message{{channel: rs("gwB", a), routes: route(bus.Route{Op: bus.OpJoin, SID: a, Arg: "/chat"})}},
		[]bus.Signal{{Kind: bus.KindConnect, SID: a, NS: "/chat", Gateway: "gwB", Query: "?q=1"}})
	c.check("leave a namespace", func() error { return pipe(stB.LeaveWrite(a, "/chat", bus.ReasonClient)) },
		[]message{{channel: rs("gwB", a), routes: route(bus.Route{Op: bus.OpLeave, SID: a, Arg: "/chat"})}},
		[]bus.Signal{{Kind: bus.KindDisconnect, SID: a, NS: "/chat", Gateway: "gwB", Reason: bus.ReasonClient}})
	c.check("join it again", func() error { return pipe(stB.JoinWrite(a, "/chat", "", false)) },
		[]message{{channel: rs("gwB", a), routes: route(bus.Route{Op: bus.OpJoin, SID: a, Arg: "/chat"})}},
		[]bus.Signal{sig(bus.KindConnect, a, "/chat", "gwB")})

	// commit.lua: the routes of one commit for one gateway's stream go as
	// one entry (a batch); a broadcast goes, on each partition's stream, to
	// the gateways holding streams of the partition (gwB, a's).
	c.check("commit", func() error {
		_, err := st.Apply(ctx, Commit{Effects: []Effect{
			JoinEffect(a, "/chat", "r1"), DeliverEffect(a, "5:::{}"), LeaveEffect(a, "/chat", "r1"),
			AckEffect(a, 42, k.ReplyChannel("w1")),
			BroadcastEffect("/chat", "r2", a, "3:/chat::all\nbut a"),
		}})
		return err
	}, []message{
		{channel: rs("gwB", a), routes: []bus.Route{
			{Op: bus.OpJoin, SID: a, Arg: "/chat", Room: "r1"},
			{Op: bus.OpDeliver, SID: a, Packet: "5:::{}", Time: now},
			{Op: bus.OpLeave, SID: a, Arg: "/chat", Room: "r1"},
			{Op: bus.OpBroadcast, Arg: "/chat", Room: "r2", SID: a, Packet: "3:/chat::all\nbut a", Time: now}}},
	}, nil)

	// ack.lua: the client's answer goes to the reply channel registered.
	c.check("ack", func() error {
		return pipe(stB.AckWrite(&bus.Signal{Kind: bus.KindAck, SID: a, Gateway: "gwB", Time: time.Now(),
			MsgID: 42, HasID: true, Args: `["ok","\n"]`}))
	}, []message{{channel: k.ReplyChannel("w1"), reply: &bus.Reply{SID: a, ID: 42, Args: `["ok","\n"]`}}},
		[]bus.Signal{{Kind: bus.KindAck, SID: a, Gateway: "gwB", MsgID: 42, HasID: true, Args: `["ok","\n"]`}})

	// leave_ns through an effect (the packet first), then end_session.
	c.check("leave namespace effect", func() error {
		_, err := st.Apply(ctx, Commit{Effects: []Effect{LeaveNamespaceEffect(a, "/chat", bus.ReasonServer, "0::/chat")}})
		return err
	}, []message{{channel: rs("gwB", a), routes: []bus.Route{
		{Op: bus.OpDeliver, SID: a, Packet: "0::/chat", Time: now},
		{Op: bus.OpLeave, SID: a, Arg: "/chat"}}}},
		[]bus.Signal{{Kind: bus.KindDisconnect, SID: a, NS: "/chat", Gateway: "gwA", Reason: bus.ReasonServer}})
	c.check("end effect", func() error {
		_, err := st.Apply(ctx, Commit{Effects: []Effect{EndEffect(a, bus.ReasonServer, "0::")}})
		return err
	}, []message{{channel: rs("gwB", a), routes: route(bus.Route{Op: bus.OpClose, SID: a, Arg: string(bus.ReasonServer), Packet: "0::"})}},
		[]bus.Signal{{Kind: bus.KindDisconnect, SID: a, Gateway: "gwA", Reason: bus.ReasonServer}})

	// A polling session: poll.lua, release.lua, end.lua.
	b, _ := st.Create(ctx, Handshake{})
	c.check("first poll", func() error { _, err := st.Poll(ctx, b, "xhr-polling", "p1", "1", false); return err }, nil,
		[]bus.Signal{{Kind: bus.KindConnect, SID: b, Gateway: "gwA", Transport: "xhr-polling"}})
	c.check("poll parks", func() error { _, err := st.Poll(ctx, b, "xhr-polling", "p2", "2", false); return err }, nil, nil)
	c.check("deliver offers", func() error { return stC.Deliver(ctx, b, "3:::y") },
		[]message{{channel: rs("gwA", b), routes: route(bus.Route{Op: bus.OpOffer, SID: b, Arg: "p2", Packet: "3:::y", Time: now})}}, nil)
	c.check("offered poll run again", func() error {
		r, err := st.Poll(ctx, b, "xhr-polling", "p2", "2", true)
		if err == nil && !slices.Equal(r.Packets, []string{"3:::y"}) {
			err = fmt.Errorf("packets %q", r.Packets)
		}
		return err
	}, nil, nil)
	c.check("same t waits", func() error {
		r, err := stB.Poll(ctx, b, "xhr-polling", "p3", "2", false)
		if err == nil && (r.Result != PollParked || r.Recheck == 0) {
			err = fmt.Errorf("poll %+v, want parked with a recheck", r)
		}
		return err
	}, nil, nil)
	c.check("release wakes", func() error { return st.Release(ctx, b, "p2") },
		[]message{{channel: rs("gwB", b), routes: route(bus.Route{Op: bus.OpWake, SID: b, Arg: "p3"})}}, nil)
	c.check("newer poll kicks, and gets the released batch", func() error {
		r, err := st.Poll(ctx, b, "xhr-polling", "p4", "3", false)
		if err == nil && !slices.Equal(r.Packets, []string{"3:::y"}) {
			err = fmt.Errorf("packets %q", r.Packets)
		}
		return err
	}, []message{{channel: rs("gwB", b), routes: route(bus.Route{Op: bus.OpKick, SID: b, Arg: "p3"})}}, nil)
	c.check("next poll parks", func() error { _, err := st.Poll(ctx, b, "xhr-polling", "p5", "4", false); return err }, nil, nil)
	c.check("join on a polling session", func() error { return pipe(stC.JoinWrite(b, "/chat", "", true)) },
		[]message{{channel: rs("gwA", b), routes: route(bus.Route{Op: bus.OpOffer, SID: b, Arg: "p5", Packet: "1::/chat", Time: now})}},
		[]bus.Signal{sig(bus.KindConnect, b, "/chat", "gwC")})
	c.check("its answer confirmed", func() error { return pipe(st.ConfirmWrite(b, "p5")) }, nil, nil)
	c.check("next poll parks again", func() error { _, err := st.Poll(ctx, b, "xhr-polling", "p6", "5", false); return err }, nil, nil)
	c.check("broadcast to a namespace", func() error {
		_, err := stC.Apply(ctx, Commit{Effects: []Effect{BroadcastEffect("/chat", "", "", "3:/chat::hi")}})
		return err
	}, []message{ // no gateway holds a stream now: offered to b's poll
		{channel: rs("gwA", b), routes: route(bus.Route{Op: bus.OpOffer, SID: b, Arg: "p6", Packet: "3:/chat::hi", Time: now})},
	}, nil)
	c.check("parked for the end", func() error { _, err := st.Poll(ctx, b, "xhr-polling", "p7", "6", false); return err }, nil, nil)
	c.check("end", func() error { _, err := stC.End(ctx, b, bus.ReasonServer, "0::"); return err },
		[]message{{channel: rs("gwA", b), routes: route(bus.Route{Op: bus.OpClose, SID: b, Arg: string(bus.ReasonServer), Packet: "0::"})}},
		[]bus.Signal{
			{Kind: bus.KindDisconnect, SID: b, NS: "/chat", Gateway: "gwC", Reason: bus.ReasonServer},
			{Kind: bus.KindDisconnect, SID: b, Gateway: "gwC", Reason: bus.ReasonServer}})

	// The reapers: reap_gateway.lua and reap_deadlines.lua.
	d, _ := stC.Create(ctx, Handshake{})
	c.check("open on a gateway", func() error {
		if _, _, err := stC.OpenStream(ctx, d, "flashsocket"); err != nil {
			return err
		}
		if err := stC.Alive(ctx, time.Minute); err != nil {
			return err
		}
		return stC.Leave(ctx)
	}, nil, []bus.Signal{{Kind: bus.KindConnect, SID: d, Gateway: "gwC", Transport: "flashsocket"}})
	c.check("reap the gateway", func() error {
		if n, err := st.ReapGateways(ctx, 100, 0); err != nil || n != 1 {
			return fmt.Errorf("reaped %d, %v", n, err)
		}
		return nil
	}, nil, // the close routed to gwC is deleted with its route stream, once the reaper forgot it
		[]bus.Signal{{Kind: bus.KindDisconnect, SID: d, Gateway: "gwA", Reason: bus.ReasonGatewayLost}})
	for p := range k.Partitions() {
		if n, err := rdb.Exists(ctx, k.RouteStream(p, "gwC")).Result(); err != nil || n != 0 {
			t.Errorf("the reaped gateway's route stream of partition %d exists: %d %v", p, n, err)
		}
	}
	e, _ := st.Create(ctx, Handshake{})
	c.check("poll, then the deadline passes", func() error {
		if _, err := st.Poll(ctx, e, "jsonp-polling", "p1", "1", false); err != nil {
			return err
		}
		return rdb.ZAdd(ctx, k.Deadlines(k.PartitionOf(e)), redis.Z{Score: 1, Member: e}).Err()
	}, nil, []bus.Signal{{Kind: bus.KindConnect, SID: e, Gateway: "gwA", Transport: "jsonp-polling"}})
	c.check("reap the deadline", func() error {
		if r, err := stB.ReapDeadlines(ctx, 100); err != nil || r != (Reaped{Timeout: 1}) {
			return fmt.Errorf("reaped %+v, %v", r, err)
		}
		return nil
	}, nil, []bus.Signal{{Kind: bus.KindDisconnect, SID: e, Gateway: "gwB", Reason: bus.ReasonTimeout}})

	// Every route kind and signal kind the scripts write was seen.
	for _, op := range []bus.Op{bus.OpDeliver, bus.OpWake, bus.OpOffer, bus.OpKick, bus.OpClose, bus.OpJoin, bus.OpLeave, bus.OpBroadcast, bus.OpBatch} {
		if !c.ops[op] {
			t.Errorf("no script published route %c", op)
		}
	}
	for _, kind := range []bus.Kind{bus.KindConnect, bus.KindDisconnect, bus.KindAck} {
		if !c.kinds[kind] {
			t.Errorf("no script wrote a %s signal", kind)
		}
	}
	if c.replies == 0 {
		t.Error("no script published a reply")
	}
}

// room_member is bus.RoomMember's format, and the constants the header
// renders are Go's.
func TestLuaHeaderMatchesGo(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	const ns, room = "/chat", "lo'bby\\"
	script := redis.NewScript(expandLuaMacros(luaHeader + `
return {room_member(ARGV[4], ARGV[5]), room_member(ARGV[4], ''),
  tostring(MB_DEFAULT), tostring(MB_WAIT_DEFAULT), tostring(MB_HARD), SIGNAL_VERSION, SIGNAL_FIELD,
  ROUTE_FIELD, tostring(ROUTE_MAXLEN), ROUTES_STALE, NOT_ROUTED, SESSIONS_STALE,
  OUTBOX_TO, OUTBOX_EFFECTS, tostring(OUTBOX_READ)}`))
	got, err := script.Run(ctx, rdb, nil, st.args(ns, room)...).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bus.RoomMember(ns, room), bus.RoomMember(ns, ""),
		fmt.Sprint(DefaultMailboxBytes), fmt.Sprint(DefaultMailboxDrainTimeout.Milliseconds()), fmt.Sprint(MailboxHardFactor),
		bus.SchemaVersion, bus.SignalField, bus.RouteField, fmt.Sprint(bus.RouteStreamMaxLen),
		routeStaleReply, notRoutedReply, sessionsStaleReply, OutboxTo, OutboxEffects, fmt.Sprint(OutboxRead)}
	if !slices.Equal(got, want) {
		t.Fatalf("Lua has\n %q\nGo has\n %q", got, want)
	}
	for _, s := range []string{"", "a", "it's", `a\b`, "\n1", "\x001"} {
		if got := rdb.Eval(ctx, "return "+luaString(s), nil).Val(); got != s {
			t.Errorf("luaString(%q) reads back as %q", s, got)
		}
	}
}

// The Lua membership entry (lib.lua's member_entry) is bus.MemberEntry's,
// whatever bytes the namespace and room hold.
func TestMemberEntryMatchesGo(t *testing.T) {
	_, rdb := newStore(t, "gwA")
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		t.Fatal(err)
	}
	var unit string
	for _, u := range luaUnits(string(lib)) {
		if slices.Contains(u.defs, "member_entry") {
			unit = u.text
		}
	}
	script := redis.NewScript(expandLuaMacros(unit + "return member_entry(room_member(ARGV[1], ARGV[2]), ARGV[3])"))
	for _, c := range [][3]string{{"", "", "AbCd"}, {"/chat", "", "AbCd"}, {"/chat", "lobby", "x"}, {"/chat", "a:b\n\xff", "AbCd"}, {"/é", "ü", ""}} {
		got, err := script.Run(context.Background(), rdb, nil, c[0], c[1], c[2]).Text()
		if want := bus.MemberEntry(c[0], c[1], c[2]); err != nil || got != want {
			t.Errorf("member_entry(%q) = %q, %v; bus.MemberEntry = %q", c, got, err, want)
		}
	}
}

// The Lua files spell no key name and build each route message in one
// helper of lib.lua, so that pkg/bus stays their one owner.
func TestLuaFilesOwnNoFormat(t *testing.T) {
	files, err := fs.Glob(luaFiles, "lua/*.lua")
	if err != nil || len(files) < 2 {
		t.Fatalf("lua files: %v %v", files, err)
	}
	prefixUse := regexp.MustCompile(`\bP\s*\.\.`)
	routeLiteral := regexp.MustCompile(`'[A-Z]\\n'`)
	routes := map[string][]string{}
	for _, f := range files {
		b, err := luaFiles.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		for i, line := range strings.Split(src, "\n") {
			code, _, _ := strings.Cut(line, "--")
			if prefixUse.MatchString(code) {
				t.Errorf("%s:%d builds a key from the prefix: %s", f, i+1, line)
			}
			for _, p := range bus.KeyPatterns() {
				if strings.Contains(code, "'"+p.Head) && len(p.Head) > 2 {
					t.Errorf("%s:%d spells key %s: %s", f, i+1, p.Doc(), line)
				}
			}
			for _, m := range routeLiteral.FindAllString(code, -1) {
				routes[m] = append(routes[m], fmt.Sprintf("%s:%d", f, i+1))
			}
		}
	}
	for _, op := range []string{"D", "W", "O", "K", "C", "J", "L", "B", "M"} {
		where := routes["'"+op+`\n'`]
		if len(where) != 1 || !strings.HasPrefix(where[0], "lua/lib.lua:") {
			t.Errorf("route %s is built at %q, want once in lua/lib.lua", op, where)
		}
	}
	for lit, where := range routes {
		if !strings.ContainsAny(lit[1:2], "DWOKCJLBM") {
			t.Errorf("unknown route literal %s at %q", lit, where)
		}
	}
}

func TestExpandLuaMacros(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"room_member(ns, room)", "((ns) .. ':' .. (room))"},
		{"room_member(f(a, b), 'x,)')", "((f(a, b)) .. ':' .. ('x,)'))"},
		{"x = room_member( {1, 2}[1], '' )", "x = (({1, 2}[1]) .. ':' .. (''))"},
		{"my_room_member(x) room_members(y) room_member", "my_room_member(x) room_members(y) room_member"},
		{"'it\\'s' room_member(\"a\\\"(\", b)", "'it\\'s' ((\"a\\\"(\") .. ':' .. (b))"},
		{"k_s(sid)", "k_s(sid)"}, // no key macro any more
	} {
		if got := expandLuaMacros(tc.in); got != tc.want {
			t.Errorf("expandLuaMacros(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"room_member(a)", "room_member(a, b, c)", "room_member(a"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("expandLuaMacros(%q) did not panic", bad)
				}
			}()
			expandLuaMacros(bad)
		}()
	}
}

func TestLuaUnits(t *testing.T) {
	src := "-- file comment\n\nlocal A = 1\n-- about f\nlocal function f(x)\n  -- inside\n  return A\nend\n\nlocal b, c = 2, 3\nlocal function g() return f(b) end\n"
	units := luaUnits(src)
	var got []string
	for _, u := range units {
		got = append(got, strings.Join(u.defs, ",")+"="+u.text)
	}
	want := []string{
		"A=local A = 1\n",
		"f=-- about f\nlocal function f(x)\n  -- inside\n  return A\nend\n\n",
		"b,c=local b, c = 2, 3\n",
		"g=local function g() return f(b) end\n",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("luaUnits =\n%q\nwant\n%q", got, want)
	}
}

// Each script carries the definitions it uses, and only those: a script
// that ends sessions carries end_session, one that does not, not.
func TestLuaSourceTakesWhatItUses(t *testing.T) {
	for _, tc := range []struct {
		script   string
		has, not []string
	}{
		{"release", []string{"local function own_keys", "local function route_to", "local function route_wake"}, []string{"end_session", "xadd", "route_kick"}},
		{"poll", []string{"local function trim_batch", "local function refresh", "local function expire_all", "local function xadd"}, []string{"end_session", "local function deliver"}},
		{"commit", []string{"local function end_session", "local function leave_ns", "local function route_batch", "SIGNAL_FIELD"}, []string{"local function own_keys", "trim_batch", "reply_message"}},
		{"ack", []string{"local function reply_message"}, []string{"local function route_to", "MB_DEFAULT"}},
	} {
		src := luaSource(tc.script)
		for _, s := range tc.has {
			if !strings.Contains(src, s) {
				t.Errorf("%s.lua lacks %q", tc.script, s)
			}
		}
		for _, s := range tc.not {
			if strings.Contains(src, s) {
				t.Errorf("%s.lua carries %q", tc.script, s)
			}
		}
	}
}
