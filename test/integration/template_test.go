package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The worker template (examples/worker-template, its own module, the
// README's "Writing a worker") builds on its own and joins a running
// cluster beside the bundled apps (`worker -app echo` and `-app chat`):
// its handlers answer in its namespace, invalid input is rejected at once,
// the official client still passes the whole echo contract and the chat
// suite passes, and it exits 0 on SIGTERM.
func TestWorkerTemplate(t *testing.T) {
	dir, _ := filepath.Abs("../../examples/worker-template")
	bin := filepath.Join(t.TempDir(), "myworker")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in examples/worker-template: %v\n%s", err, out)
	}
	contract := nodeScript(t, "echo-contract.js")
	script, _ := filepath.Abs("../node_modules/socket.io-client/dist/socket.io.js")
	web, _ := filepath.Abs("../../web/chat")
	c := newCluster(t)
	gw := c.gateway("a", "-static", web, "-client-script", script)
	gw2 := c.gateway("b", "-static", web, "-client-script", script)
	c.worker("echo1", "echo")
	c.worker("chat1", "chat")
	t.Setenv("REDIS_URL", c.redis.URL())
	admin := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	t.Setenv("ADMIN_ADDR", admin)
	w := c.start("myworker", regexp.MustCompile(`INFO (worker) started`), bin)
	// Its admin endpoints: ready once the other workers of its app can
	// have read what it serves.
	waitUntil(t, "the template's /readyz answers 200", 10*time.Second, func() error {
		if status, body, _ := get(t, "http://"+admin+"/readyz"); status != 200 {
			return fmt.Errorf("/readyz %d %q", status, body)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The bundled apps, beside it, pass their own tests: the echo contract
	// first (its count checks count every socket of the default
	// namespace, which the clients below join too).
	out := runNode(t, contract, "--urls", strings.Join(urls(gw, gw2), ","), "--transport", "websocket")
	if !contractPassed(out) {
		t.Fatalf("echo contract with the template beside the bundled apps:\n%s", out)
	}
	const ns = "/myworker"
	for _, transport := range []string{"websocket", "xhr-polling"} {
		cl := dial(t, transport, urls(gw))
		if err := cl.Connect(ctx, ns); err != nil {
			t.Fatalf("%s: connect %s: %v", transport, ns, err)
		}
		if _, err := cl.NextEvent(ctx, ns, "welcome"); err != nil {
			t.Fatalf("%s: welcome: %v", transport, err)
		}
		for _, tc := range []struct {
			event string
			args  []any
			want  string
		}{
			{"echo", []any{1, "two"}, `[1,"two"]`},
			{"chat", []any{42}, `[{"error":"chat takes a string"}]`},
			{"chat", []any{"hi"}, `["delivered"]`},
		} {
			start := time.Now()
			got, err := cl.EmitAck(ctx, ns, tc.event, tc.args...)
			if err != nil {
				t.Fatalf("%s %s: %v", transport, tc.event, err)
			}
			mustJSON(t, got, tc.want)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("%s %s answered after %v", transport, tc.event, d)
			}
		}
	}
	chatSuite(t, gw, gw2, script)
	if _, body, _ := get(t, "http://"+admin+"/metrics"); !strings.Contains(body, `realtime_worker_signals_total{kind="event",result="rejected"}`) {
		t.Errorf("the template's /metrics has no rejected event:\n%.2000s", body)
	}
	if strings.Contains(w.logText(), "signal with no handler") {
		t.Errorf("the template counted the other apps' signals unhandled:\n%s", w.logText())
	}
	w.signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the template did not stop on SIGTERM")
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the template exited %d on SIGTERM, want 0:\n%s", code, w.logText())
	}
}

// The bundled worker drains and exits 0 on SIGTERM (Run's nil on a clean
// shutdown is no error), releasing its partitions.
func TestWorkerExitsZeroOnSIGTERM(t *testing.T) {
	c := newCluster(t)
	w := c.worker("w1", "echo,chat")
	w.logged(regexp.MustCompile(`msg="partitions (acquired)"`))
	w.signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the worker did not stop on SIGTERM")
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the worker exited %d on SIGTERM, want 0:\n%s", code, w.logText())
	}
	for _, want := range []string{`msg="partitions released on shutdown"`, `msg="worker stopped"`} {
		if !strings.Contains(w.logText(), want) {
			t.Errorf("the worker's log has no %s:\n%s", want, w.logText())
		}
	}
	for _, bad := range []string{"level=ERROR", "worker: error:", "<nil>"} {
		if strings.Contains(w.logText(), bad) {
			t.Errorf("the worker logged %q on a clean shutdown:\n%s", bad, w.logText())
		}
	}
}
