package integration

import (
	"path/filepath"
	"strings"
	"testing"
)

// Two apps side by side on one cluster, each with its own workers: `worker
// -app chat` and two replicas of `worker -app echo` (consumer groups chat
// and echo). Every app gets every signal and answers those of its own
// namespaces: the chat suite passes, and the official client passes the
// whole echo contract over websocket and xhr-polling. (With one group for
// both, as before apps, each worker got half of the partitions and dropped
// the other app's events.)
func TestAppsSideBySide(t *testing.T) {
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
