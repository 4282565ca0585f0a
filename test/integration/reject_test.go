package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/pkg/protocol"
)

// The bundled echo app rejects invalid input (join with a number:
// worker.Event.Reject): the client's callback gets the app's error object
// at once, and the session's next event, sent right behind it, is answered
// well within the consumer's retry delay (RetryBackoff 200 ms per attempt,
// about 800 ms before a failing signal is dead-lettered and the session
// moves on), not after it. An event no handler takes, in a namespace the
// worker serves, gets {"error":"unhandled"} at once; one in a namespace no
// app serves is left alone (another app may serve it: docs/redis.md,
// "Apps"), and delays nothing.
func TestRejectedEventDoesNotDelayTheNext(t *testing.T) {
	c := newCluster(t)
	gw := c.gateway("a")
	c.worker("w1", "echo")
	// A signal that is retried costs at least one RetryBackoff (200 ms)
	// per attempt: the next event's answer within this bound proves no
	// retry ran in front of it, with room for a busy machine.
	const bound = 400 * time.Millisecond
	for _, transport := range []string{"websocket", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl := dial(t, transport, urls(gw))
			if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
				t.Fatal(err)
			}
			if err := cl.Connect(ctx, "/nobody"); err != nil {
				t.Fatal(err)
			}
			// The round trip of an event that is handled, for the log.
			start := time.Now()
			if _, err := cl.EmitAck(ctx, "", "echo", "warm"); err != nil {
				t.Fatal(err)
			}
			t.Logf("an echo round trip: %v", time.Since(start))
			id := uint64(1000)
			for round := range 5 {
				// Sent back to back, in this order, without waiting for
				// answers: the rejected event, the next one, an event with
				// no handler, one in a namespace no worker serves.
				sent := []struct {
					ns, event, args, want string
				}{
					{"", "join", `[42]`, `[{"error":"worker: event \"join\" arg 0: json: cannot unmarshal number into Go value of type string"}]`},
					{"", "echo", fmt.Sprintf(`["next",%d]`, round), fmt.Sprintf(`["next",%d]`, round)},
					{"", "reverse", `["abc"]`, `[{"error":"unhandled"}]`},
					{"/nobody", "echo", `[1]`, ""}, // not answered
				}
				start := time.Now()
				want := map[string]string{}
				for _, s := range sent {
					id++
					p := protocol.Packet{Type: protocol.Event, ID: id, HasID: true, AckData: true, Endpoint: s.ns,
						Data: protocol.AppendEvent(nil, s.event, []byte(s.args))}
					if err := cl.Send(ctx, p); err != nil {
						t.Fatal(err)
					}
					if s.want != "" {
						want[ackKey(s.ns, id)] = s.want
					}
				}
				got, took := nextAcks(t, ctx, cl, len(want))
				if a, ok := got[ackKey("/nobody", id)]; ok {
					t.Errorf("round %d: the event in a namespace no app serves was answered %s", round, a)
				}
				for k, w := range want {
					if got[k] != w {
						t.Errorf("round %d: ack %s = %s, want %s", round, k, got[k], w)
					}
				}
				next := ackKey("", id-2)
				t.Logf("round %d: the event after the rejected one answered %v after the first was sent", round, took[next].Sub(start))
				if d := took[next].Sub(start); d > bound {
					t.Fatalf("round %d: the event after a rejected one was answered %v after it was sent, want within %v (no retry in front of it)", round, d, bound)
				}
				for k, at := range took {
					if d := at.Sub(start); d > bound {
						t.Errorf("round %d: ack %s came %v after the first was sent, want within %v", round, k, d, bound)
					}
				}
			}
		})
	}
}

func ackKey(ns string, id uint64) string { return fmt.Sprintf("%s#%d", ns, id) }

// nextAcks reads packets until n acks came and returns their arguments and
// arrival times by ackKey; any other packet fails the test.
func nextAcks(t *testing.T, ctx context.Context, cl *sioclient.Client, n int) (map[string]string, map[string]time.Time) {
	t.Helper()
	args, at := map[string]string{}, map[string]time.Time{}
	for len(args) < n {
		p, err := cl.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d acks: %v", len(args), n, err)
		}
		if p.Type != protocol.Ack {
			t.Fatalf("unexpected packet %s", strings.TrimSpace(p.String()))
		}
		id, a, _, err := protocol.ParseAck(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		k := ackKey(p.Endpoint, id)
		args[k], at[k] = string(a), time.Now()
	}
	return args, at
}
