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
	if err := e.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: e.keys.RouteStream("gw"), ID: "0-1", Values: []any{bus.RouteField, "P\nopen\n"}}).Err(); err != nil {
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
	msgs, err := e.rdb.XRange(context.Background(), e.keys.RouteStream("gw"), "-", "+").Result()
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
