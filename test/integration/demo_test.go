package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// The one-command demo (embedded miniredis, gateway and workers in one
// process) passes the official client's echo contract: the embedded server
// runs the same scripts and stream commands as a real Redis.
func TestDemo(t *testing.T) {
	// Parallel: a demo process (its own embedded Redis) of its own; the
	// contract's checks wait up to 10 s each.
	t.Parallel()
	script := nodeScript(t, "echo-contract.js")
	root, _ := filepath.Abs("../..")
	c := &cluster{t: t}
	d := c.start("demo", listenRE, binary(t, "demo"), "-addr", "127.0.0.1:0",
		"-static", filepath.Join(root, "web/chat"),
		"-client-script", filepath.Join(root, "test/node_modules/socket.io-client/dist/socket.io.js"))
	if !strings.Contains(d.logText(), "DEMO MODE") {
		t.Fatal("the demo does not say loudly that it is a demo")
	}
	for _, transport := range []string{"websocket", "xhr-polling"} {
		out := runNode(t, script, "--urls", "http://"+d.addr, "--transport", transport)
		if !contractPassed(out) {
			t.Fatalf("%s:\n%s", transport, out)
		}
	}
	if status, body, _ := get(t, d.url("/")); status != 200 || !strings.Contains(body, "realtime chat") {
		t.Fatalf("chat page: %d", status)
	}
}
