package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/internal/testredis"
)

// Gateways and workers given a Sentinel URL find the primary through the
// sentinels and follow a failover by themselves: with the primary killed
// (SIGKILL) and its replica promoted, new sessions handshake and get their
// acked echoes within 15 s, and no process exits. (What was in flight on
// pub/sub at the kill is not covered here: see the Redis faults issue.)
func TestClusterFollowsSentinelFailover(t *testing.T) {
	set := testredis.StartSentinels(t)
	c := newCluster(t)
	url := set.URL()
	gws := []*proc{c.gateway("a", "-redis", url), c.gateway("b", "-redis", url)}
	w := c.worker("w", "echo", "-redis", url)
	echo := func(ctx context.Context, transport string, n int) error {
		cl, err := sioclient.Dial(ctx, transport, urls(gws...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
			return err
		}
		got, err := cl.EmitAck(ctx, "", "echo", n)
		if err != nil {
			return err
		}
		if string(got) != fmt.Sprintf("[%d]", n) {
			return fmt.Errorf("ack %s", got)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, transport := range []string{"websocket", "xhr-polling"} {
		if err := echo(ctx, transport, 1); err != nil {
			t.Fatalf("%s before the failover: %v", transport, err)
		}
	}
	old := set.Primary(t)
	killed := time.Now()
	old.Kill(t)
	set.WaitFailover(t, old, 30*time.Second)
	for _, transport := range []string{"websocket", "xhr-polling"} {
		var err error
		for deadline := killed.Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = echo(ctx, transport, 2)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s: no acked echo within 15 s of the kill: %v", transport, err)
		}
		t.Logf("%s: talking again %v after the primary was killed", transport, time.Since(killed).Round(100*time.Millisecond))
	}
	for _, p := range append(gws, w) {
		select {
		case <-p.done:
			t.Fatalf("%s exited during the failover", p.name)
		default:
		}
	}
}
