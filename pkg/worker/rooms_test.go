package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/session"
)

// Unbounded per-session state (issue 16 item 3), rooms: one session asks
// to join 20,000 rooms (and some with 1 KB names), as the echo app's join
// lets a client do; it stays in MaxRooms rooms, the room sets in Redis do
// not grow past them, each refusal is the sentinel error (which wraps
// ErrRejected, so the signal is not retried) and is counted; a
// well-behaved session in the same run joins a room and gets what is
// sent to it.
func TestRoomBound(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond, Metrics: m})
	if w.maxRooms != session.DefaultMaxRooms || w.maxRoomBytes != session.DefaultMaxRoomBytes {
		t.Fatalf("bounds %d rooms, %d bytes; want the defaults", w.maxRooms, w.maxRoomBytes)
	}
	var lastErr = make(chan error, 1)
	ns := w.Namespace("")
	ns.OnEvent("join", func(ctx context.Context, s *Socket, ev *Event) error {
		var room string
		if err := ev.Decode(&room); err != nil {
			return err
		}
		err := s.Join(room)
		if err != nil && ev.Acknowledgeable() {
			select {
			case lastErr <- err:
			default:
			}
			return ev.Ack(map[string]string{"error": err.Error()})
		}
		return err // a refusal wraps ErrRejected: committed, not retried
	})
	ns.OnEvent("say", func(ctx context.Context, s *Socket, ev *Event) error {
		var room, msg string
		if err := ev.Decode(&room, &msg); err != nil {
			return err
		}
		return s.In(room).Emit("said", msg)
	})
	stop := e.run(w)
	defer stop()

	bad, good := e.session(), e.session()
	const tries = 20000
	long := strings.Repeat("x", 1024)
	for i := 0; i < tries; i++ {
		e.event(bad, "join", fmt.Sprintf(`["r%d"]`, i), 0)
		if i%100 == 0 {
			e.event(bad, "join", fmt.Sprintf(`["%s%d"]`, long, i), 0)
		}
	}
	e.event(bad, "join", `["one-more"]`, 1)
	e.event(good, "join", `["lobby"]`, 0)
	e.event(good, "say", `["lobby","hi"]`, 0)
	var err error
	select {
	case err = <-lastErr:
	case <-time.After(120 * time.Second):
		t.Fatal("the last join was not handled")
	}
	if !errors.Is(err, ErrTooManyRooms) || !errors.Is(err, ErrRejected) {
		t.Fatalf("join beyond the bound: %v, want ErrTooManyRooms (an ErrRejected)", err)
	}
	ctx := context.Background()
	n, err := e.rdb.SCard(ctx, e.keys.SessionRooms(bad)).Result()
	if err != nil || n != session.DefaultMaxRooms {
		t.Fatalf("session in %d rooms (%v), want %d", n, err, session.DefaultMaxRooms)
	}
	n, err = e.rdb.ZCard(ctx, e.keys.RoomIndex(e.keys.PartitionOf(bad))).Result()
	if err != nil || n > session.DefaultMaxRooms+1 {
		t.Fatalf("%d rooms in the partition's index (%v), want at most %d", n, err, session.DefaultMaxRooms+1)
	}
	if got, want := value(m.RoomsRefused.WithLabelValues("too_many_rooms")), float64(tries-session.DefaultMaxRooms+1); got != want {
		t.Errorf("too_many_rooms counted %v, want %v", got, want)
	}
	if got, want := value(m.RoomsRefused.WithLabelValues("room_name_too_long")), float64(tries/100); got != want {
		t.Errorf("room_name_too_long counted %v, want %v", got, want)
	}
	if got := value(m.Signals.WithLabelValues("event", "error")); got != 0 {
		t.Errorf("%v handler errors: a refused join must not be retried", got)
	}
	waitFor(t, "the good session's room message", func() bool {
		mb := e.mailbox(good)
		return len(mb) > 0 && mb[len(mb)-1] == `5:::{"name":"said","args":["hi"]}`
	})
}
