package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// OnBatch: the handler gets the runs of signals between authorize signals
// (which the worker answers itself), in order; a partial answer (handled <
// len, nil) is called again with the rest; an error drops the failed
// call's actions and retries it; what the calls' sockets did is committed,
// in order, including EmitAckID and the socket's other addresses.
func TestOnBatch(t *testing.T) {
	e := newEnv(t)
	sid := e.session() // its connect signal
	e.event(sid, "a1", "[]", 0)
	// The gateway's route stream, open (routes go only to open ones).
	if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.RouteStream(e.keys.PartitionOf(sid), "gw"), ID: "0-1", Values: []any{bus.RouteField, "P\nopen\n"}}).Err(); err != nil {
		t.Fatal(err)
	}
	auth := bus.Signal{Kind: bus.KindAuthorize, SID: sid, Gateway: "gw", Time: time.Now(), Reply: "gw 1", Data: "{}"}
	if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.StreamFor(sid), Values: auth.Values()}).Err(); err != nil {
		t.Fatal(err)
	}
	e.event(sid, "a2", "[]", 0)
	e.event(sid, "a3", "[]", 0)

	var mu sync.Mutex
	var runs [][]string
	failedOnce := false
	w := New(e.rdb, Config{Keys: e.keys, RetryBackoff: 20 * time.Millisecond})
	w.OnBatch(func(ctx context.Context, calls []*Call) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		var run []string
		for _, c := range calls {
			run = append(run, string(c.Signal.Kind)+":"+c.Signal.Name)
		}
		runs = append(runs, run)
		for i, c := range calls {
			s := c.Socket
			switch c.Signal.Name {
			case "":
				if err := s.EmitRaw("welcome", []byte("[]")); err != nil {
					return i, err
				}
			case "a1":
				if err := s.EmitAckID(7, "q", []byte("[1]")); err != nil {
					return i, err
				}
				if err := s.EmitAckID(0, "q", []byte("[1]")); err == nil {
					return i, errors.New("EmitAckID took id 0")
				}
			case "a2":
				if err := s.Other(sid, "").SendJSON(map[string]int{"n": 2}); err != nil {
					return i, err
				}
				return i + 1, nil // partial: a3 comes in another call
			case "a3":
				if err := s.Send("a3 effect"); err != nil {
					return i, err
				}
				if !failedOnce {
					failedOnce = true
					return i, errors.New("a3 fails once") // its send is dropped
				}
			}
		}
		return len(calls), nil
	})
	stop := e.run(w)
	defer stop()
	waitFor(t, "4 packets", func() bool { return len(e.mailbox(sid)) >= 4 })
	time.Sleep(200 * time.Millisecond)
	want := []string{`5:::{"name":"welcome"}`, `5:7+::{"name":"q","args":[1]}`, `4:::{"n":2}`, `3:::a3 effect`}
	if got := e.mailbox(sid); !slices.Equal(got, want) {
		t.Errorf("mailbox:\n got %q\nwant %q", got, want)
	}
	// The authorize signal was answered by the worker (allowed: no hook).
	msgs, err := e.rdb.XRange(context.Background(), e.keys.RouteStream(e.keys.PartitionOf(sid), "gw"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	answered := false
	for _, m := range msgs {
		r, _ := m.Values[bus.RouteField].(string)
		answered = answered || strings.HasPrefix(r, "A\n1\n1\n")
	}
	if !answered {
		t.Errorf("no authorize answer on the route stream: %v", msgs)
	}
	mu.Lock()
	defer mu.Unlock()
	got := make([]string, len(runs))
	for i, r := range runs {
		got[i] = strings.Join(r, ",")
	}
	wantRuns := []string{"connect:,event:a1", "event:a2,event:a3", "event:a3", "event:a3"}
	if !slices.Equal(got, wantRuns) {
		t.Errorf("runs %q, want %q", got, wantRuns)
	}
}

// OnBatch with namespaces: the handler gets only the signals of those
// namespaces, in order; the others are another app's (counted not_served,
// no answer), and the worker describes what it serves accordingly.
func TestOnBatchNamespaces(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	w := New(e.rdb, Config{Keys: e.keys, App: "bridge", Metrics: m})
	var mu sync.Mutex
	var seen []string
	w.OnBatch(func(ctx context.Context, calls []*Call) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range calls {
			seen = append(seen, string(c.Signal.Kind)+" "+c.Signal.NS+" "+c.Signal.Name)
			if c.Event != nil && c.Event.Acknowledgeable() {
				if err := c.Event.Ack("batch"); err != nil {
					return 0, err
				}
			}
		}
		return len(calls), nil
	}, "/b")
	if got, want := w.describe(), `{"v":1,"namespaces":{"/b":{"any_event":true,"message":true,"json":true}}}`; got != want {
		t.Fatalf("describe() = %s, want %s", got, want)
	}
	stop := e.run(w)
	defer stop()
	sid := e.session()
	for i, ns := range []string{"", "/b", "", "/b"} {
		sig := bus.Signal{Kind: bus.KindEvent, SID: sid, NS: ns, Gateway: "gw", Time: time.Now(), Name: "e", Args: "[]",
			MsgID: uint64(i + 1), HasID: true, AckData: true}
		if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.StreamFor(sid), Values: sig.Values()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`6::/b:2+["batch"]`, `6::/b:4+["batch"]`}
	waitFor(t, "the two answers", func() bool { return len(e.mailbox(sid)) >= len(want) })
	time.Sleep(50 * time.Millisecond)
	if got := e.mailbox(sid); !slices.Equal(got, want) {
		t.Fatalf("mailbox:\n got %q\nwant %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"event /b e", "event /b e"}; !slices.Equal(seen, want) {
		t.Errorf("the handler saw %q, want %q (the default namespace's connect and events are another app's)", seen, want)
	}
	if n := signalsCounted(t, m, "event", "not_served"); n != 2 {
		t.Errorf("%v events counted not_served, want 2", n)
	}
}
