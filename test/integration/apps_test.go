package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Two apps side by side on one cluster, each with its own workers: `worker
// -app chat` and two replicas of `worker -app echo` (consumer groups chat
// and echo). Every app gets every signal and answers those of its own
// namespaces: the chat suite passes, and the official client passes the
// whole echo contract over websocket and xhr-polling. (With one group for
// both, as before apps, each worker got half of the partitions and dropped
// the other app's events.)
func TestAppsSideBySide(t *testing.T) {
	// Parallel: a cluster of its own; the contract's and the chat
	// suite's checks wait up to 10 and 30 s.
	t.Parallel()
	contract := nodeScript(t, "echo-contract.js")
	script, _ := filepath.Abs("../node_modules/socket.io-client/dist/socket.io.js")
	web, _ := filepath.Abs("../../web/chat")
	c := newCluster(t)
	g1 := c.gateway("a", "-static", web, "-client-script", script, "-admin-addr", "127.0.0.1:0")
	g2 := c.gateway("b", "-static", web, "-client-script", script)
	chat := c.worker("c1", "chat", "-admin-addr", "127.0.0.1:0")
	c.worker("e1", "echo")
	c.worker("e2", "echo")
	// The contract first: its count checks count every socket of the
	// default namespace, and the chat suite's users stay connected.
	for _, transport := range []string{"websocket", "xhr-polling"} {
		out := runNode(t, contract, "--urls", strings.Join(urls(g1, g2), ","), "--transport", transport)
		if !contractPassed(out) {
			t.Fatalf("echo contract over %s with the chat app beside it:\n%s", transport, out)
		}
		t.Logf("echo contract over %s: %s", transport, lastLine(out))
	}
	chatSuite(t, g1, g2, script)
	// The chat worker saw the echo app's events and left them alone.
	if n := metricAdmin(t, chat, `realtime_worker_signals_total{kind="event",result="not_served"}`); n == 0 {
		t.Errorf("the chat worker counted no event of another app's namespace as not served")
	}
	if n := metricAdmin(t, chat, `realtime_worker_signals_total{kind="event",result="unhandled"}`); n != 0 {
		t.Errorf("the chat worker counted %v events unhandled", n)
	}
}

// A rolling deploy under traffic that adds a namespace to an app: the old
// version (`worker -app echo -group web`) serves official clients sending
// acked and plain echoes; the new version (`-app chat,echo -group web`,
// serving /chatroom too) starts beside it; chat users then connect to
// /chatroom and set nicknames, while the old version is stopped (SIGTERM).
// No echo is lost, duplicated or reordered and every nickname is answered
// by the new version: the old one hands the partitions whose chat signals
// it does not serve over to the new one instead of dropping them (before,
// it acknowledged them as another app's, and about half of the chat users
// never got an answer).
func TestRollingDeployUnderTraffic(t *testing.T) {
	// Parallel: a cluster of its own; it waits on a 12 s run of 4
	// clients across the deploy.
	t.Parallel()
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gw := c.gateway("a")
	old := c.worker("old", "echo", "-group", "web")
	done := make(chan nodeResult, 1)
	go runNodeAsync(done, script, "--url", "http://"+gw.addr, "--transport", "websocket",
		"--clients", "4", "--seconds", "12", "--expect", "same-session", "--plain")
	time.Sleep(2 * time.Second)
	nw := c.worker("new", "chat,echo", "-group", "web")
	waitUntil(t, "the new version owning partitions", 10*time.Second, func() error {
		if !strings.Contains(nw.logText(), `msg="partitions acquired"`) {
			return fmt.Errorf("no partitions acquired yet")
		}
		return nil
	})
	time.Sleep(time.Second) // the old version sees what the new one serves within 0.5 s (lease TTL / 3)

	const users = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	calls := make([]int, users)
	stopUsers := make(chan struct{})
	for i := range users {
		transport := []string{"websocket", "xhr-polling"}[i%2]
		cl := dial(t, transport, urls(gw))
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("user %d (%s): ", i, transport)+fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cl.Connect(ctx, "/chatroom")
			cancel()
			if err != nil {
				fail("connect: %v", err)
				return
			}
			for n := 0; ; n++ {
				select {
				case <-stopUsers:
					return
				default:
				}
				name := fmt.Sprintf("u%dn%d", i, n)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				raw, err := cl.EmitAck(ctx, "/chatroom", "nick", name)
				cancel()
				var got []map[string]any
				if err == nil {
					err = json.Unmarshal(raw, &got)
				}
				if err != nil || len(got) != 1 || got[0]["nick"] != name {
					fail("nick %s: answered %s (%v)", name, raw, err)
					return
				}
				calls[i]++
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	old.signal(syscall.SIGTERM) // the deploy ends: the old version stops
	select {
	case <-old.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the old version did not stop within 15 s of SIGTERM")
	}
	time.Sleep(2 * time.Second)
	close(stopUsers)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	for i, n := range calls {
		if n < 5 {
			t.Errorf("user %d set only %d nicknames", i, n)
		}
	}
	passed(t, "echo clients", done)
	if !strings.Contains(old.logText(), `msg="partition handed over to a worker that serves a signal this one does not"`) {
		t.Errorf("the old version handed no partition over:\n%s", old.logText())
	}
}

// An app in another language beside a Go app: the Go echo app (`worker
// -app echo`: "" and /chat) and the Django chat through the HTTP bridge
// declaring its namespace (`worker -app http -http-namespaces /chatroom`,
// gunicorn with two workers). The official client passes the whole echo
// contract, answered by Go (the Django project also has echo receivers for
// "" and /chat, which would answer as well if the bridge sent them those
// signals), the chat suite passes through Django, and the bridge leaves
// the echo app's signals alone (counted not_served).
func TestBridgeAppBesideGoApp(t *testing.T) {
	needDjango(t)
	contract := nodeScript(t, "echo-contract.js")
	script, _ := filepath.Abs("../node_modules/socket.io-client/dist/socket.io.js")
	web, _ := filepath.Abs("../../web/chat")
	c := newCluster(t)
	g1 := c.gateway("a", "-static", web, "-client-script", script)
	g2 := c.gateway("b", "-static", web, "-client-script", script)
	c.worker("e1", "echo")
	endpoint := c.django("gunicorn", "")
	bridged := c.worker("h1", "http", "-http-endpoint", endpoint, "-http-secret", bridgeSecret,
		"-http-namespaces", "/chatroom", "-admin-addr", "127.0.0.1:0")
	out := runNode(t, contract, "--urls", strings.Join(urls(g1, g2), ","), "--transport", "websocket")
	if !contractPassed(out) {
		t.Fatalf("echo contract with the bridged chat beside it:\n%s", out)
	}
	t.Logf("echo contract: %s", lastLine(out))
	chatSuite(t, g1, g2, script)
	if n := metricAdmin(t, bridged, `realtime_worker_signals_total{kind="event",result="not_served"}`); n == 0 {
		t.Errorf("the bridge counted no event of the echo app's namespaces as not served")
	}
	if n := metricAdmin(t, bridged, `realtime_worker_signals_total{kind="event",result="ok"}`); n == 0 {
		t.Errorf("the bridge handled no chat event")
	}
}
