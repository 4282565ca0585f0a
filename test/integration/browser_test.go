package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Headless Chromium drives the chat page (test/browser/chat.js) and checks
// the DOM and the console; screenshots at desktop and phone width go to
// test/artifacts (ignored by git).
//
//   - pairs: two pages through two gateways, each on its own transport
//     (websocket, xhr-polling and jsonp-polling in turn), with the chat of
//     each backend (chatBackends: Go, Django under gunicorn): entering, unique
//     nicknames, errors unlike notices, times, who is online, a rename
//     without a rejoin, a 1,500-character word at 1280 and 390 px, a reload
//     with no console error, a closed page gone at once (the close timeout
//     is 20 s: only the page's explicit disconnect makes it that fast);
//   - faults: two pages behind the shipped haproxy config while the gateway
//     holding a websocket page is killed (kill -9), twice, the second time
//     with the page's handshakes refused for a while: reconnecting, offline,
//     the rejoin with nickname and room, queued lines, a fresh user list;
//   - restart: the one-process demo killed (kill -9) and started again on
//     its address, with nothing of its state: both pages rejoin;
//   - noworker: a gateway with no worker: "Set" reports the missing answer;
//   - refused: a gateway whose -origins refuses the page: the handshake's
//     403 is said (the 0.9 client alone stays "connecting" for good), and
//     Reconnect tries again.
func TestBrowserChat(t *testing.T) {
	script := nodeScript(t, "../browser/chat.js")
	if _, err := exec.LookPath("/usr/bin/chromium"); err != nil && os.Getenv("CHROMIUM") == "" {
		need(t, "chromium is not installed (apt-get install chromium)")
	}
	root, _ := filepath.Abs("../..")
	artifacts := filepath.Join(root, "test", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	// A long close timeout, so that a closed polling page that leaves at
	// once shows the page's own disconnect. (Heartbeats must come sooner
	// than the client's heartbeat timeout.)
	page := []string{"-static", filepath.Join(root, "web/chat"),
		"-client-script", filepath.Join(root, "test/node_modules/socket.io-client/dist/socket.io.js")}
	flags := append([]string{"-close-timeout", "20s", "-polling-duration", "2s", "-heartbeat-interval", "1s"}, page...)
	// Each suite's number of checks: a suite that stops early fails.
	checks := map[string]int{"pair": 19, "faults": 12, "restart": 3, "noworker": 3, "refused": 3}

	t.Run("pairs", func(t *testing.T) {
		forChatBackends(t, func(t *testing.T, b chatBackend) {
			c := newCluster(t)
			g1, g2 := c.gateway("a", flags...), c.gateway("b", flags...)
			b.start(c)
			transports := []string{"websocket", "xhr-polling", "jsonp-polling"}
			for i, ta := range transports {
				tb := transports[(i+1)%len(transports)]
				t.Run(ta+"+"+tb, func(t *testing.T) {
					tag := b.name + "-" + ta + "-" + tb
					out := runBrowser(t, script, nil, "--suite", "pair", "--a", "http://"+g1.addr, "--b", "http://"+g2.addr,
						"--transport-a", ta, "--transport-b", tb, "--shots", artifacts, "--tag", tag)
					checkSuite(t, out, checks["pair"], "chat-"+tag+"-desktop.png", "chat-"+tag+"-phone.png")
				})
			}
		})
	})

	t.Run("faults", func(t *testing.T) {
		c := newCluster(t)
		gws, admins := c.lbGateways(3, flags...)
		c.worker("w1", "chat")
		lb := c.haproxy(gws, admins)
		actions := map[string]func(arg string) error{
			// kill-gateway <sid>: kill -9 the gateway holding session sid.
			"kill-gateway": func(sid string) error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				node, err := c.rdb.HGet(ctx, c.keys.Session(sid), "gw").Result()
				if err != nil {
					return fmt.Errorf("gateway of %s: %w", sid, err)
				}
				for _, g := range gws {
					if g.name == node {
						g.kill()
						t.Logf("killed gateway %s (held %s)", node, sid)
						return nil
					}
				}
				return fmt.Errorf("session %s is held by %q, not a gateway of this test", sid, node)
			},
			// redis-restart: kill Redis and start it again, empty.
			"redis-restart": func(string) error {
				c.redis.Kill(t)
				time.Sleep(time.Second)
				c.redis.Restart(t)
				return nil
			},
		}
		out := runBrowser(t, script, actions, "--suite", "faults", "--url", lb, "--shots", artifacts)
		checkSuite(t, out, checks["faults"], "chat-offline-desktop.png", "chat-offline-phone.png",
			"chat-faults-desktop.png", "chat-faults-phone.png")
	})

	t.Run("restart", func(t *testing.T) {
		c := &cluster{t: t}
		d := c.start("demo", listenRE, binary(t, "demo"), append([]string{"-addr", "127.0.0.1:0"}, page...)...)
		actions := map[string]func(string) error{
			// restart: kill -9 the demo and start it again on its address.
			"restart": func(string) error {
				d.kill()
				time.Sleep(2 * time.Second)
				d = c.start("demo", listenRE, binary(t, "demo"), append([]string{"-addr", d.addr}, page...)...)
				return nil
			},
		}
		out := runBrowser(t, script, actions, "--suite", "restart", "--url", "http://"+d.addr)
		checkSuite(t, out, checks["restart"])
	})

	t.Run("refused", func(t *testing.T) {
		c := newCluster(t)
		g := c.gateway("a", append([]string{"-origins", "example.com:443"}, flags...)...)
		out := runBrowser(t, script, nil, "--suite", "refused", "--url", "http://"+g.addr)
		checkSuite(t, out, checks["refused"])
	})

	t.Run("noworker", func(t *testing.T) {
		c := newCluster(t)
		g := c.gateway("a", flags...)
		out := runBrowser(t, script, nil, "--suite", "noworker", "--url", "http://"+g.addr, "--shots", artifacts)
		checkSuite(t, out, checks["noworker"], "chat-noworker-desktop.png", "chat-noworker-phone.png")
	})
}

// checkSuite fails unless the browser suite passed exactly n checks and
// wrote the screenshots (names in test/artifacts).
func checkSuite(t *testing.T, out string, n int, shots ...string) {
	t.Helper()
	if !strings.Contains(out, fmt.Sprintf("\n%d passed, 0 failed", n)) {
		t.Fatalf("browser suite (want %d passed):\n%s", n, out)
	}
	for _, s := range shots {
		if !strings.Contains(out, "# screenshot ") || !strings.Contains(out, s) {
			t.Fatalf("no screenshot %s:\n%s", s, out)
		}
		if fi, err := os.Stat(filepath.Join("..", "artifacts", s)); err != nil || fi.Size() == 0 {
			t.Fatalf("screenshot %s: %v", s, err)
		}
	}
	t.Logf("browser suite:\n%s", out)
}

// runBrowser runs a Node program that may ask for actions: a line
// "# do <name> <arg>" on its stdout runs actions[name](arg) and answers
// "ok" (or "error: ...") on its stdin. It returns the program's output and
// fails the test if the program exits non-zero.
func runBrowser(t *testing.T, script string, actions map[string]func(arg string) error, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(b)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		mu.Lock()
		out.WriteString(line + "\n")
		mu.Unlock()
		req, ok := strings.CutPrefix(line, "# do ")
		if !ok {
			continue
		}
		name, arg, _ := strings.Cut(req, " ")
		answer := "ok"
		if f := actions[name]; f == nil {
			answer = "error: no action " + name
		} else if err := f(arg); err != nil {
			answer = "error: " + err.Error()
		}
		if _, err := io.WriteString(stdin, answer+"\n"); err != nil {
			t.Logf("answering %s: %v", name, err)
		}
	}
	err = cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		t.Fatalf("node %s %s: %v\n%s", filepath.Base(script), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
