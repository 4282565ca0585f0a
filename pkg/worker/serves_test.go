package worker

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

func TestServedTakes(t *testing.T) {
	unused := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // describe and peer use no Redis
	defer unused.Close()
	w := New(unused, Config{})
	w.Namespace("").OnEvent("echo", func(context.Context, *Socket, *Event) error { return nil })
	w.Namespace("").OnMessage(func(context.Context, *Socket, string) error { return nil })
	w.Namespace("/any").OnAnyEvent(func(context.Context, *Socket, *Event) error { return nil })
	w.Namespace("/any").OnJSON(func(context.Context, *Socket, json.RawMessage) error { return nil })
	raw := w.describe()
	if want := `{"v":1,"namespaces":{"":{"events":["echo"],"message":true},"/any":{"any_event":true,"json":true}}}`; raw != want {
		t.Fatalf("describe() = %s, want %s", raw, want)
	}
	d := w.peer(raw)
	for _, tc := range []struct {
		sig  bus.Signal
		want bool
	}{
		{bus.Signal{Kind: bus.KindEvent, Name: "echo"}, true},
		{bus.Signal{Kind: bus.KindEvent, Name: "reverse"}, false},
		{bus.Signal{Kind: bus.KindMessage}, true},
		{bus.Signal{Kind: bus.KindJSON}, false},
		{bus.Signal{Kind: bus.KindConnect}, true},
		{bus.Signal{Kind: bus.KindEvent, NS: "/any", Name: "whatever"}, true},
		{bus.Signal{Kind: bus.KindJSON, NS: "/any"}, true},
		{bus.Signal{Kind: bus.KindMessage, NS: "/any"}, false},
		{bus.Signal{Kind: bus.KindDisconnect, NS: "/other"}, false},
		{bus.Signal{Kind: bus.KindEvent, NS: "/other", Name: "echo"}, false},
	} {
		if got := d.takes(tc.sig); got != tc.want {
			t.Errorf("takes(%s %q %q) = %v, want %v", tc.sig.Kind, tc.sig.NS, tc.sig.Name, got, tc.want)
		}
	}
	all := New(unused, Config{})
	all.OnBatch(func(context.Context, []*Call) (int, error) { return 0, nil })
	if raw := all.describe(); raw != `{"v":1,"all":true}` || !all.peer(raw).takes(bus.Signal{Kind: bus.KindEvent, NS: "/x", Name: "y"}) {
		t.Fatalf("an OnBatch worker describes itself as %s", raw)
	}
	for _, bad := range []string{"", "{", `{"v":2,"all":true}`, "null"} {
		if w.peer(bad) != nil {
			t.Errorf("peer(%q) is not nil", bad)
		}
	}
}

// TestRollingDeployHandsOverNewEvents: the old version of an app handles
// "echo", the new one "echo" and "reverse"; while both run, every
// "reverse" is answered by the new one (the old hands the partition over),
// each session's acks come in order, once each, and an event neither
// serves is still answered as unhandled.
func TestRollingDeployHandsOverNewEvents(t *testing.T) {
	e := newEnv(t)
	echo := func(ctx context.Context, s *Socket, ev *Event) error { return ev.Ack(ev.Args) }
	oldM, newM := NewMetrics(nil), NewMetrics(nil)
	old := New(e.rdb, Config{Keys: e.keys, App: "web", Name: "old", LeaseTTL: 600 * time.Millisecond, Metrics: oldM})
	old.Namespace("").OnEvent("echo", echo)
	stopOld := e.run(old)
	defer stopOld()
	waitFor(t, "old owning all 4 partitions", func() bool { return len(old.Owned()) == 4 })
	var sids []string
	for range 12 {
		sids = append(sids, e.session())
	}
	nw := New(e.rdb, Config{Keys: e.keys, App: "web", Name: "new", LeaseTTL: 600 * time.Millisecond, Metrics: newM})
	nw.Namespace("").OnEvent("echo", echo)
	nw.Namespace("").OnEvent("reverse", func(ctx context.Context, s *Socket, ev *Event) error { return ev.Ack("reversed", ev.Args) })
	stopNew := e.run(nw)
	defer stopNew()
	waitFor(t, "an even share, old seeing what new serves", func() bool {
		return len(old.Owned()) == 2 && len(nw.Owned()) == 2 && old.consumer.Peers()["new"] != ""
	})
	for _, sid := range sids {
		e.event(sid, "echo", `[1]`, 1)
		e.event(sid, "reverse", `[2]`, 2)
		e.event(sid, "echo", `[3]`, 3)
		e.event(sid, "nobody", `[4]`, 4)
		e.event(sid, "reverse", `[5]`, 5)
	}
	want := []string{`6:::1+[1]`, `6:::2+["reversed",[2]]`, `6:::3+[3]`, `6:::4+[{"error":"unhandled"}]`, `6:::5+["reversed",[5]]`}
	deadline := time.Now().Add(10 * time.Second)
	for _, sid := range sids {
		for len(e.mailbox(sid)) < len(want) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		if got := e.mailbox(sid); !slices.Equal(got, want) {
			all, _ := e.rdb.LRange(context.Background(), e.keys.Mailbox(sid), 0, -1).Result()
			pend, _ := e.rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: e.keys.StreamFor(sid), Group: "web", Start: "-", End: "+", Count: 100}).Result()
			t.Logf("DEBUG pending %+v", pend)
			t.Errorf("session %s (partition %d): mailbox\n got %q\nwant %q\nwhole %q", sid, bus.Partition(sid, 4), got, want, all)
		}
	}
	var handovers dto.Metric
	if err := oldM.Handovers.Write(&handovers); err != nil {
		t.Fatal(err)
	}
	if n := handovers.GetCounter().GetValue(); n < 1 {
		t.Errorf("the old worker handed over %v partitions", n)
	}
	if n := signalsCounted(t, oldM, "event", "unhandled") + signalsCounted(t, newM, "event", "unhandled"); n != 12 {
		t.Errorf("%v events counted unhandled, want the 12 nobody serves", n)
	}
}
