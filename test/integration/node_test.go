package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nodeScript returns the path of a program under test/node, failing (in CI)
// or skipping (elsewhere) when Node or the npm packages are missing.
func nodeScript(t *testing.T, name string) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		need(t, "node is not installed")
	}
	dir, _ := filepath.Abs("..")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		need(t, "test/node_modules is missing: run `cd test && npm ci` (make test does)")
	}
	return filepath.Join(dir, "node", name)
}

// need fails in CI and skips elsewhere.
func need(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: nothing may skip)", why)
	}
	t.Skip(why)
}

// runNode runs a Node program and fails the test with its output if it
// exits non-zero.
func runNode(t *testing.T, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s %s: %v\n%s", filepath.Base(script), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The official socket.io-client 0.9.16 passes every item of the echo
// contract against three gateways and two workers, over websocket and
// xhr-polling, in both namespaces; including U+2028, which the reference
// server loses.
func TestOfficialClientEchoContract(t *testing.T) {
	// Parallel: each transport has a cluster of its own; the contract's
	// checks wait up to 10 s each.
	t.Parallel()
	script := nodeScript(t, "echo-contract.js")
	for _, transport := range []string{"websocket", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			c := newCluster(t)
			gws := []*proc{c.gateway("a"), c.gateway("b"), c.gateway("c")}
			c.worker("w1", "echo")
			c.worker("w2", "echo")
			out := runNode(t, script, "--urls", strings.Join(urls(gws...), ","), "--transport", transport)
			if !contractPassed(out) {
				t.Fatalf("unexpected result:\n%s", out)
			}
			t.Logf("%s", lastLine(out))
		})
	}
}

var summaryRE = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// contractPassed reports whether the echo contract program passed every
// check, and ran at least the 28 it has today.
func contractPassed(out string) bool {
	m := summaryRE.FindStringSubmatch(out)
	if m == nil || m[2] != "0" {
		return false
	}
	n, _ := strconv.Atoi(m[1])
	return n >= 28
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// The official client over websocket: a packet the gateway rejects gets
// the error packet (the client emits error) and its ack (the callback
// fires), and the session goes on (issue 16 item 9).
func TestOfficialClientRejectedPacketsAnswered(t *testing.T) {
	script := nodeScript(t, "rejected-packets.js")
	c := newCluster(t)
	gw := c.gateway("a")
	c.worker("w1", "echo")
	out := runNode(t, script, "--url", urls(gw)[0])
	if !strings.Contains(out, "3 passed, 0 failed") {
		t.Fatalf("unexpected result:\n%s", out)
	}
	t.Logf("%s", lastLine(out))
}
