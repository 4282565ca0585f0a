package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/haproxycfg"
	"github.com/realtime/realtime/internal/sioclient"
)

var adminRE = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)

// lbGateway starts a gateway with an admin listener for the balancer's
// readiness check and returns it with its admin address.
func (c *cluster) lbGateway(node string, extra ...string) (*proc, string) {
	c.t.Helper()
	g := c.gateway(node, append([]string{"-admin-addr", "127.0.0.1:0"}, extra...)...)
	return g, g.logged(adminRE)
}

// lbGateways starts n gateways with admin listeners, for haproxy.
func (c *cluster) lbGateways(n int, extra ...string) ([]*proc, []string) {
	c.t.Helper()
	var gws []*proc
	var admins []string
	for i := 1; i <= n; i++ {
		g, a := c.lbGateway(fmt.Sprintf("g%d", i), extra...)
		gws, admins = append(gws, g), append(admins, a)
	}
	return gws, admins
}

// haproxy runs the shipped deploy/haproxy/haproxy.cfg in front of the
// gateways (its bind and server lines rewritten) and returns its URL.
func (c *cluster) haproxy(gws []*proc, admins []string) string {
	c.t.Helper()
	return c.haproxyServers(servers(gws, admins))
}

// servers describes gateways (with their admin addresses) for haproxy.
func servers(gws []*proc, admins []string) []haproxycfg.Server {
	var out []haproxycfg.Server
	for i, g := range gws {
		_, port, _ := net.SplitHostPort(admins[i])
		check, _ := strconv.Atoi(port)
		out = append(out, haproxycfg.Server{Name: g.name, Addr: g.addr, CheckPort: check})
	}
	return out
}

// haproxyServers runs the shipped config in front of servers.
func (c *cluster) haproxyServers(servers []haproxycfg.Server) string {
	c.t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		need(c.t, "haproxy is not installed (apt-get install haproxy)")
	}
	root, _ := filepath.Abs("../..")
	cfg, err := os.ReadFile(filepath.Join(root, "deploy/haproxy/haproxy.cfg"))
	if err != nil {
		c.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	path := filepath.Join(c.t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(haproxycfg.Derive(cfg, addr, servers)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command("haproxy", "-db", "-f", path)
	var logs lockedBuilder // written by exec's copier while the test reads it
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if c.t.Failed() {
			c.t.Logf("--- haproxy ---\n%s", logs.String())
		}
	})
	waitUntil(c.t, "haproxy listens", 10*time.Second, func() error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, logs.String())
		}
		conn.Close()
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // the first health checks pass
	return "http://" + addr
}

// The official client passes the echo contract through haproxy in plain
// round-robin in front of three gateways: every request of a polling
// session may land on a different gateway.
func TestOfficialClientThroughLoadBalancer(t *testing.T) {
	// Parallel: each transport has a cluster and haproxy of its own; the
	// contract's checks wait up to 10 s each.
	t.Parallel()
	script := nodeScript(t, "echo-contract.js")
	for _, transport := range []string{"xhr-polling", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			c := newCluster(t)
			gws, admins := c.lbGateways(3)
			c.worker("w1", "echo")
			c.worker("w2", "echo")
			lb := c.haproxy(gws, admins)
			out := runNode(t, script, "--urls", lb, "--transport", transport)
			if !contractPassed(out) {
				t.Fatalf("%s through haproxy:\n%s", transport, out)
			}
		})
	}
}

// kill -9 of a gateway holding parked polls, behind haproxy: the balancer
// retries each parked GET on another gateway, the session store serves it,
// and every polling client keeps its session and gets what was sent to it.
func TestGatewayKilledBehindLoadBalancer(t *testing.T) {
	c := newCluster(t)
	gws, admins := c.lbGateways(3)
	c.worker("w1", "echo")
	lb := c.haproxy(gws, admins)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var clients []*sioclient.Client
	for i := 0; i < 9; i++ {
		cl := dial(t, "xhr-polling", []string{lb})
		if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	time.Sleep(500 * time.Millisecond) // every client has a poll parked somewhere
	victim := gws[1]
	victim.kill()
	// Traffic after the kill: each client asks for an echo and gets it.
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for i, cl := range clients {
		wg.Add(1)
		go func(i int, cl *sioclient.Client) {
			defer wg.Done()
			for n := 0; n < 5; n++ {
				got, err := cl.EmitAck(ctx, "", "echo", i, n)
				if err != nil {
					errs <- fmt.Errorf("client %d (%s): %v", i, cl.SID, err)
					return
				}
				if string(got) != fmt.Sprintf("[%d,%d]", i, n) {
					errs <- fmt.Errorf("client %d: ack %s", i, got)
					return
				}
			}
		}(i, cl)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, cl := range clients {
		if err := cl.Err(); err != nil {
			t.Errorf("client %s lost its session: %v", cl.SID, err)
		}
	}
}

// SIGTERM drains a gateway under steady traffic through haproxy: it turns
// unready, the balancer stops sending it requests, parked polls are answered
// and websockets closed (paced, never with 0::). Polling clients do not
// notice: same session, nothing lost, duplicated or reordered. Websocket
// clients reconnect through the official client's own reconnect, and the
// sessions they left ended in Redis (with their disconnect signals).
func TestGatewayDrainUnderTraffic(t *testing.T) {
	// Parallel: a cluster and haproxy of its own; it waits on a 10 s run
	// of 12 clients across the drain.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gws, admins := c.lbGateways(3, "-drain-delay", "2500ms", "-drain-timeout", "4s")
	c.worker("w1", "echo")
	c.worker("w2", "echo")
	lb := c.haproxy(gws, admins)
	type result struct {
		out string
		err error
	}
	runs := map[string]chan result{}
	for transport, expect := range map[string]string{"xhr-polling": "same-session", "websocket": "reconnect"} {
		ch := make(chan result, 1)
		runs[transport] = ch
		go func() {
			out, err := exec.Command("node", script, "--url", lb, "--transport", transport,
				"--clients", "6", "--seconds", "10", "--expect", expect).CombinedOutput()
			ch <- result{string(out), err}
		}()
	}
	time.Sleep(3 * time.Second)
	// The gateway holding the most websockets (round robin between the
	// polling requests may leave any one of them without a websocket).
	victim, most := gws[0], -1.0
	for i, g := range gws {
		_, m, _ := get(t, "http://"+admins[i]+"/metrics")
		if n := metric(m, `realtime_gateway_connections{transport="websocket"}`); n > most {
			victim, most = g, n
		}
	}
	t.Logf("draining %s, which holds %v websockets", victim.name, most)
	start := time.Now()
	victim.signal(syscall.SIGTERM)
	select {
	case <-victim.done:
		t.Logf("gateway drained and exited in %v", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("the drained gateway did not exit within 15s")
	}
	if !strings.Contains(victim.logText(), "gateway drained") {
		t.Fatalf("no drain in the log:\n%s", victim.logText())
	}
	for transport, ch := range runs {
		r := <-ch
		if r.err != nil || !strings.Contains(r.out, " passed, 0 failed") {
			t.Errorf("%s clients during the drain: %v\n%s", transport, r.err, r.out)
		}
		if transport == "websocket" && len(oldSessions(r.out)) == 0 {
			t.Errorf("no websocket client was on the drained gateway (none reconnected):\n%s", r.out)
		}
		t.Logf("%s: %d sessions replaced by reconnects", transport, len(oldSessions(r.out)))
		// Sessions left behind by reconnects ended in Redis.
		for _, sid := range oldSessions(r.out) {
			if n, _ := c.rdb.Exists(context.Background(), c.keys.Session(sid)).Result(); n != 0 {
				t.Errorf("%s session %s was left behind but not ended", transport, sid)
			}
		}
	}
}

// oldSessions returns the session ids that clients replaced by reconnecting.
func oldSessions(out string) []string {
	var sids []string
	for _, line := range strings.Split(out, "\n") {
		if js, ok := strings.CutPrefix(line, "# "); ok {
			var st struct{ Sids []string }
			if json.Unmarshal([]byte(js), &st) == nil && len(st.Sids) > 1 {
				sids = append(sids, st.Sids[:len(st.Sids)-1]...)
			}
		}
	}
	return sids
}

// kill -9 of a worker under steady traffic through haproxy: the surviving
// worker takes its partitions over (leases expire, pending entries are
// reclaimed) and every event still gets its ack, in order, in the same
// session.
func TestWorkerKilledUnderTraffic(t *testing.T) {
	// Parallel: a cluster and haproxy of its own; it waits on a 9 s run
	// of 8 clients across the kill.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gws, admins := c.lbGateways(2)
	w1 := c.worker("w1", "echo")
	c.worker("w2", "echo")
	lb := c.haproxy(gws, admins)
	done := make(chan string, 2)
	for _, transport := range []string{"xhr-polling", "websocket"} {
		go func() {
			out, err := exec.Command("node", script, "--url", lb, "--transport", transport,
				"--clients", "4", "--seconds", "9", "--expect", "same-session").CombinedOutput()
			if err != nil {
				out = append(out, []byte("\nexit: "+err.Error())...)
			}
			done <- transport + ":\n" + string(out)
		}()
	}
	time.Sleep(3 * time.Second)
	w1.kill()
	for i := 0; i < 2; i++ {
		out := <-done
		if !strings.Contains(out, " passed, 0 failed") {
			t.Errorf("clients while a worker was killed:\n%s", out)
		}
	}
}

// kill -9 of a gateway under steady websocket traffic through haproxy: the
// official client's own reconnect brings every client back (through the
// balancer, to a live gateway), and the surviving gateways end the sessions
// the dead one held (reason gateway_lost), so none is left behind.
func TestGatewayKilledUnderWebSocketTraffic(t *testing.T) {
	// Parallel: a cluster and haproxy of its own; it waits on a 9 s run
	// of 6 clients across the kill.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gws, admins := c.lbGateways(3, "-liveness-ttl", "1s")
	c.worker("w1", "echo")
	lb := c.haproxy(gws, admins)
	done := make(chan string, 1)
	go func() {
		out, err := exec.Command("node", script, "--url", lb, "--transport", "websocket",
			"--clients", "6", "--seconds", "9", "--expect", "reconnect").CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nexit: "+err.Error())...)
		}
		done <- string(out)
	}()
	time.Sleep(3 * time.Second)
	gws[1].kill()
	out := <-done
	if !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("websocket clients after a gateway was killed:\n%s", out)
	}
	old := oldSessions(out)
	if len(old) == 0 {
		t.Fatalf("no client was on the killed gateway:\n%s", out)
	}
	for _, sid := range old {
		if n, _ := c.rdb.Exists(context.Background(), c.keys.Session(sid)).Result(); n != 0 {
			t.Errorf("session %s of the killed gateway was not reaped", sid)
		}
	}
	t.Logf("%d sessions of the killed gateway reaped; their clients reconnected", len(old))
}

// SIGTERM of a worker under steady traffic: it finishes the batch in hand,
// commits, releases its partitions at once (no waiting for leases to
// expire) and exits; every event still gets its ack, in order.
func TestWorkerDrainUnderTraffic(t *testing.T) {
	// Parallel: a cluster and haproxy of its own; it waits on an 8 s run
	// of 4 clients across the drain.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gws, admins := c.lbGateways(2)
	// Long leases: if the drained worker did not release its partitions,
	// the acks would stall past the clients' 5 s deadline.
	w1 := c.worker("w1", "echo", "-lease-ttl", "20s")
	c.worker("w2", "echo", "-lease-ttl", "20s")
	lb := c.haproxy(gws, admins)
	done := make(chan string, 1)
	go func() {
		out, err := exec.Command("node", script, "--url", lb, "--transport", "websocket",
			"--clients", "4", "--seconds", "8", "--expect", "same-session").CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nexit: "+err.Error())...)
		}
		done <- string(out)
	}()
	time.Sleep(2 * time.Second)
	w1.signal(syscall.SIGTERM)
	select {
	case <-w1.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not exit within 10s of SIGTERM")
	}
	if !strings.Contains(w1.logText(), "partitions released on shutdown") {
		t.Errorf("the worker released no partition:\n%s", w1.logText())
	}
	if out := <-done; !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("clients while a worker drained:\n%s", out)
	}
}

// lockedBuilder is a strings.Builder safe for one writer and readers.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
