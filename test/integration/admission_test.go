package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 11 item 2: a refused first handshake is fatal to the official 0.9
// client (it emits 'error' and never tries again), so admission control
// holds excess handshakes instead of refusing them. These tests drive the
// official socket.io-client 0.9.16 (test/node/handshake-burst.js) against
// a gateway with admission limits; the raw-protocol checks are
// TestAdmissionControl and TestHandshakeWithoutRedis.

// Eight official clients at once against -max-handshake-rate 2: all eight
// connect and get an acked echo back, none sees an error; the last one is
// admitted about 3 s after the first (2 at once, then one every 0.5 s).
func TestOfficialClientHandshakeBurst(t *testing.T) {
	script := nodeScript(t, "handshake-burst.js")
	c := newCluster(t)
	g := c.gateway("a", "-max-handshake-rate", "2", "-admin-addr", "127.0.0.1:0")
	admin := "http://" + g.logged(adminRE)
	c.worker("w1", "echo")
	out := runNode(t, script, "--url", g.url(""), "--clients", "8", "--linger", "300")
	s, _ := burstResult(t, out)
	if s.Connected != 8 || s.Echoed != 8 || s.Errors != 0 {
		t.Fatalf("8 clients at -max-handshake-rate 2: %+v\n%s", s, out)
	}
	if s.LastConnectMs < 2000 || s.LastConnectMs > 6500 {
		t.Fatalf("the last client connected after %d ms; want about 3000 (held for the rate)\n%s", s.LastConnectMs, out)
	}
	_, m, _ := get(t, admin+"/metrics")
	if metric(m, `realtime_gateway_handshakes_total{result="ok"}`) != 8 || sumMetric(m, "realtime_gateway_handshakes_total{") != 8 ||
		metric(m, "realtime_gateway_handshake_wait_seconds_count") < 5 {
		t.Fatalf("metrics:\n%s", grep(m, "handshake"))
	}
	t.Logf("8 official clients at once, -max-handshake-rate 2: all connected and echoed; the last connected after %d ms", s.LastConnectMs)
}

// Beyond -max-handshake-queue the excess gets 503 at once. This records what
// the official client does with it: it emits 'error' with the body and never
// tries again (the gateway sees no second handshake). At 1/s with a queue
// of 2, six clients at once: one admitted at once, two held (1 s, 2 s),
// three refused.
func TestOfficialClientBeyondHandshakeQueue(t *testing.T) {
	script := nodeScript(t, "handshake-burst.js")
	c := newCluster(t)
	g := c.gateway("a", "-max-handshake-rate", "1", "-max-handshake-queue", "2", "-admin-addr", "127.0.0.1:0")
	admin := "http://" + g.logged(adminRE)
	c.worker("w1", "echo")
	out := runNode(t, script, "--url", g.url(""), "--clients", "6", "--linger", "2500")
	s, clients := burstResult(t, out)
	if s.Connected+s.Errors != 6 || s.Connected != s.Echoed || s.Connected < 3 || s.Errors < 2 {
		t.Fatalf("6 clients, rate 1, queue 2: %+v\n%s", s, out)
	}
	for _, c := range clients {
		if c.Error == nil {
			continue
		}
		if *c.Error != "handshake error: server over capacity (too many handshakes waiting), retry later" {
			t.Fatalf("client %d: error %q", c.Client, *c.Error)
		}
		if len(c.Events) != 1 || !strings.HasPrefix(c.Events[0], "error@") {
			t.Fatalf("client %d after its refusal: events %q (want the error alone: no retry)", c.Client, c.Events)
		}
		var at int
		if _, err := fmt.Sscanf(c.Events[0], "error@%d", &at); err != nil || at > 1000 {
			t.Fatalf("client %d: refused at %q, not at once", c.Client, c.Events[0])
		}
	}
	_, m, _ := get(t, admin+"/metrics")
	if metric(m, `realtime_gateway_handshakes_total{result="queue_full"}`) != float64(s.Errors) ||
		sumMetric(m, "realtime_gateway_handshakes_total{") != 6 {
		t.Fatalf("the gateway saw other handshakes than the six first ones (%d refused):\n%s", s.Errors, grep(m, "handshakes_total"))
	}
	t.Logf("%d connected (the last after %d ms); %d got 'error' at once and never retried", s.Connected, s.LastConnectMs, s.Errors)
}

// Redis stalls (SIGSTOP) for 2 s while official clients handshake: the
// handshakes are held (the gateway retries the session commit) and all
// clients connect once Redis is back (SIGCONT), none sees an error.
func TestOfficialClientHandshakeRedisPaused(t *testing.T) {
	script := nodeScript(t, "handshake-burst.js")
	c := newCluster(t)
	g := c.gateway("a", "-admin-addr", "127.0.0.1:0")
	admin := "http://" + g.logged(adminRE)
	c.worker("w1", "echo")
	c.redis.Pause(t)
	paused := time.Now()
	wait := startNode(t, script, "--url", g.url(""), "--clients", "4", "--linger", "300")
	// All four are held, not refused, while Redis answers nothing.
	deadline := time.Now().Add(4 * time.Second)
	for {
		_, m, _ := get(t, admin+"/metrics")
		if metric(m, "realtime_gateway_handshakes_waiting") == 4 {
			break
		}
		if time.Now().After(deadline) {
			c.redis.Resume(t)
			t.Fatalf("handshakes not held while Redis is paused:\n%s\n%s", grep(m, "handshake"), wait())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(paused.Add(2 * time.Second)))
	c.redis.Resume(t)
	t.Logf("Redis paused for %v", time.Since(paused))
	out := wait()
	s, _ := burstResult(t, out)
	if s.Connected != 4 || s.Echoed != 4 || s.Errors != 0 {
		t.Fatalf("4 clients while Redis was paused: %+v\n%s", s, out)
	}
	_, m, _ := get(t, admin+"/metrics")
	if metric(m, `realtime_gateway_handshakes_total{result="ok"}`) != 4 || sumMetric(m, "realtime_gateway_handshakes_total{") != 4 ||
		metric(m, `realtime_gateway_redis_errors_total{op="handshake"}`) < 4 || metric(m, "realtime_gateway_handshakes_waiting") != 0 {
		t.Fatalf("metrics:\n%s\n%s", grep(m, "handshake"), grep(m, "redis_errors"))
	}
	t.Logf("4 official clients handshaking into a paused Redis: all connected and echoed; the last after %d ms", s.LastConnectMs)
}

// handshakeBurst sends n handshakes to p at once and returns the answers.
func handshakeBurst(t *testing.T, p *proc, n int) []hsAnswer {
	t.Helper()
	out := make([]hsAnswer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			resp, err := client.Get(p.url(fmt.Sprintf("/socket.io/1/?t=%d", i)))
			if err != nil {
				out[i] = hsAnswer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[i] = hsAnswer{status: resp.StatusCode, body: string(b), retryAfter: resp.Header.Get("Retry-After"), took: time.Since(t0), err: err}
		}()
	}
	close(start)
	wg.Wait()
	for _, a := range out {
		if a.err != nil {
			t.Fatalf("handshake: %v", a.err)
		}
	}
	return out
}

type hsAnswer struct {
	status     int
	body       string
	retryAfter string
	took       time.Duration
	err        error
}

// burstSummary and burstClient are what handshake-burst.js prints.
type burstSummary struct {
	Clients, Connected, Echoed, Errors int
	LastConnectMs                      int
}

type burstClient struct {
	Client    int
	ConnectMs *int
	Echo      bool
	Error     *string
	Events    []string
}

func burstResult(t *testing.T, out string) (burstSummary, []burstClient) {
	t.Helper()
	var s burstSummary
	var cs []burstClient
	found := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "summary "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "summary ")), &s); err != nil {
				t.Fatalf("summary %q: %v", line, err)
			}
			found = true
		case strings.HasPrefix(line, "{"):
			var c burstClient
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatalf("client line %q: %v", line, err)
			}
			cs = append(cs, c)
		}
	}
	if !found || len(cs) != s.Clients {
		t.Fatalf("no summary, or not one line per client:\n%s", out)
	}
	return s, cs
}

// sumMetric adds every sample whose name and labels start with prefix.
func sumMetric(text, prefix string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				var v float64
				if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
					sum += v
				}
			}
		}
	}
	return sum
}

// startNode starts a Node program in the background; the returned function
// waits for it and returns its output, failing the test if it exits
// non-zero.
func startNode(t *testing.T, script string, args ...string) (wait func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node %s: %v", filepath.Base(script), err)
	}
	var once sync.Once
	var err error
	t.Cleanup(func() {
		cancel() // ends it if the test did not wait for it
		once.Do(func() { err = cmd.Wait() })
	})
	return func() string {
		t.Helper()
		once.Do(func() { err = cmd.Wait() })
		if err != nil {
			t.Fatalf("node %s %s: %v\n%s", filepath.Base(script), strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
}
