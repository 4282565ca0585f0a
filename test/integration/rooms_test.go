package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/session"
)

// Unbounded per-session state (issue 16 item 3) across the processes: one
// websocket client asks the echo app to join 20,000 rooms, 200 of them
// with 1 KB names; its session stays in -max-rooms (1024) rooms, the room
// sets in Redis do not grow past them, and its acked join beyond the bound
// is answered with the error; two well-behaved clients in the same run
// join a room and relay through it.
func TestRoomFloodBounded(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a")
	c.worker("w1", "echo")
	base := "http://" + gw.addr

	sid, bad := openWS(t, base, true)
	long := strings.Repeat("x", 1024)
	for i := 0; i < 20000; i++ {
		if err := bad.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`5:::{"name":"join","args":["r%d"]}`, i))); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if i%100 == 0 {
			writeWS(t, bad, fmt.Sprintf(`5:::{"name":"join","args":["%s%d"]}`, long, i))
		}
	}
	writeWS(t, bad, `5:1+::{"name":"join","args":["one-more"]}`)
	if got := readText(t, bad); !strings.HasPrefix(got, `6:::1+[{"error":"`) || !strings.Contains(got, "too many rooms") {
		t.Fatalf("the join beyond the bound answered %q, want the too-many-rooms error", got)
	}
	ctx := context.Background()
	if n, err := c.rdb.SCard(ctx, c.keys.SessionRooms(sid)).Result(); err != nil || n != session.DefaultMaxRooms {
		t.Fatalf("the session is in %d rooms (%v), want %d", n, err, session.DefaultMaxRooms)
	}
	if n, err := c.rdb.ZCard(ctx, c.keys.RoomIndex(c.keys.PartitionOf(sid))).Result(); err != nil || n > session.DefaultMaxRooms {
		t.Fatalf("%d rooms in the partition's index (%v), want at most %d", n, err, session.DefaultMaxRooms)
	}

	_, a := openWS(t, base, true)
	_, b := openWS(t, base, true)
	writeWS(t, b, `5:1+::{"name":"join","args":["lobby"]}`)
	if got := readText(t, b); got != "6:::1+[true]" {
		t.Fatalf("b's join: %q", got)
	}
	writeWS(t, a, `5:1+::{"name":"to","args":["lobby","hi"]}`)
	if got := readText(t, a); got != "6:::1+[true]" {
		t.Fatalf("a's to: %q", got)
	}
	if got := readText(t, b); got != `5:::{"name":"relay","args":["hi"]}` {
		t.Fatalf("b's relay: %q", got)
	}
}
