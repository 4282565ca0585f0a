package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The worker template (examples/worker-template, its own module, the
// README's "Writing a worker") builds on its own and joins a running
// cluster: its handlers answer, invalid input is rejected at once, and it
// exits 0 on SIGTERM.
func TestWorkerTemplate(t *testing.T) {
	dir, _ := filepath.Abs("../../examples/worker-template")
	bin := filepath.Join(t.TempDir(), "myworker")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in examples/worker-template: %v\n%s", err, out)
	}
	c := newCluster(t)
	gw := c.gateway("a")
	t.Setenv("REDIS_URL", c.redis.URL())
	w := c.start("myworker", regexp.MustCompile(`INFO (worker) started`), bin)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, transport := range []string{"websocket", "xhr-polling"} {
		cl := dial(t, transport, urls(gw))
		if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
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
			got, err := cl.EmitAck(ctx, "", tc.event, tc.args...)
			if err != nil {
				t.Fatalf("%s %s: %v", transport, tc.event, err)
			}
			mustJSON(t, got, tc.want)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("%s %s answered after %v", transport, tc.event, d)
			}
		}
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
