package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/internal/testredis"
)

// Gateways and workers given a Sentinel URL find the primary through the
// sentinels and follow a failover by themselves: with the primary killed
// (SIGKILL) and its replica promoted, new sessions handshake and get their
// acked echoes within 15 s, and no process exits. (Under traffic:
// TestSentinelFailoverUnderTraffic.)
func TestClusterFollowsSentinelFailover(t *testing.T) {
	// Parallel: a Sentinel set and cluster of its own (the sentinels
	// watch only their own primary); it waits on the failover.
	t.Parallel()
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

// The primary of a Sentinel set killed (SIGKILL) under websocket and
// xhr-polling traffic from official clients to two gateways: the cluster
// follows the promoted replica; at most 10% of the sessions are lost
// (their clients reconnected by their own client), no client loses an ack
// on a session it kept, nothing is duplicated, and every client talks
// again within 15 s of the kill.
func TestSentinelFailoverUnderTraffic(t *testing.T) {
	// Parallel: a Sentinel set and cluster of its own; it waits on an
	// 18 s run of 20 clients across the failover.
	t.Parallel()
	set := testredis.StartSentinels(t)
	failoverUnderTraffic(t, newCluster(t), set.URL(), nil, 20/10, func() {
		old := set.Primary(t)
		old.Kill(t)
		set.WaitFailover(t, old, 30*time.Second)
	})
}

// failoverUnderTraffic runs official clients through two gateways and an
// echo worker on Redis url (10 clients over websocket to one gateway, 10
// over xhr-polling to the other, 18 s, steady.js's no-silent-loss), calls
// fail 3 s in (a failover of the primary), and checks at most maxLost of
// the 20 sessions were lost (their clients reconnected by their own
// client; maxLost < 0: counted, not checked), no client lost an ack on a
// session it kept, nothing was duplicated, and no process exited. The
// gateways get gwFlags too.
func failoverUnderTraffic(t *testing.T, c *cluster, url string, gwFlags []string, maxLost int, fail func()) {
	t.Helper()
	a := c.gateway("a", append([]string{"-redis", url, "-admin-addr", "127.0.0.1:0"}, gwFlags...)...)
	b := c.gateway("b", append([]string{"-redis", url, "-admin-addr", "127.0.0.1:0"}, gwFlags...)...)
	w := c.worker("w", "echo", "-redis", url)
	const clients = 10
	runs := map[string]chan nodeResult{
		"websocket":   steady(t, "http://"+a.addr, "websocket", "no-silent-loss", clients, 18),
		"xhr-polling": steady(t, "http://"+b.addr, "xhr-polling", "no-silent-loss", clients, 18),
	}
	time.Sleep(3 * time.Second)
	fail()
	lost := 0
	for transport, done := range runs {
		r := <-done
		if r.err != nil {
			t.Errorf("%s: steady.js: %v\n%s", transport, r.err, r.out)
			continue
		}
		n, l := steadySessions(t, r.out)
		lost += l
		t.Logf("%s: %d clients, %d reconnected: %s", transport, n, l, lastLine(r.out))
	}
	if maxLost >= 0 && lost > maxLost {
		t.Errorf("%d of %d sessions lost to the failover, want at most %d", lost, 2*clients, maxLost)
	}
	t.Logf("%d of %d sessions lost to the failover", lost, 2*clients)
	for _, p := range []*proc{a, b, w} {
		select {
		case <-p.done:
			t.Errorf("%s exited during the failover", p.name)
		default:
		}
	}
}

// steadySessions reads steady.js's per-client lines: how many clients, and
// how many of them lost their first session (reconnected with a new one).
func steadySessions(t *testing.T, out string) (clients, lost int) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		js, ok := strings.CutPrefix(line, "# ")
		if !ok {
			continue
		}
		var st struct{ Sids []string }
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("steady.js line %q: %v", line, err)
		}
		clients++
		if len(st.Sids) > 1 {
			lost++
		}
	}
	return clients, lost
}
