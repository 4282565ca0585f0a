package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Headless Chromium opens the chat page twice, through two gateways, each
// page on a different transport, websocket, xhr-polling and jsonp-polling in
// turn, and the two pages chat; screenshots go to test/artifacts.
func TestBrowserChat(t *testing.T) {
	script := nodeScript(t, "../browser/chat.js")
	chromium := "/usr/bin/chromium"
	if _, err := exec.LookPath(chromium); err != nil {
		need(t, "chromium is not installed (apt-get install chromium)")
	}
	root, _ := filepath.Abs("../..")
	artifacts := filepath.Join(root, "test", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	// A short close timeout: closed polling pages leave within seconds.
	// (Heartbeats must come sooner than the close timeout: the client drops
	// any transport that hears nothing for that long.)
	flags := []string{"-close-timeout", "3s", "-polling-duration", "2s", "-heartbeat-interval", "1s", "-static", filepath.Join(root, "web/chat"),
		"-client-script", filepath.Join(root, "test/node_modules/socket.io-client/dist/socket.io.js")}
	g1, g2 := c.gateway("a", flags...), c.gateway("b", flags...)
	c.worker("w1", "chat")
	transports := []string{"websocket", "xhr-polling", "jsonp-polling"}
	for i, ta := range transports {
		tb := transports[(i+1)%len(transports)]
		t.Run(ta+"+"+tb, func(t *testing.T) {
			shot := filepath.Join(artifacts, "chat-"+ta+"-"+tb+".png")
			out := runNode(t, script, "--a", "http://"+g1.addr, "--b", "http://"+g2.addr,
				"--transport-a", ta, "--transport-b", tb, "--shot", shot)
			if !strings.Contains(out, "6 passed, 0 failed") {
				t.Fatalf("browser chat:\n%s", out)
			}
			if _, err := os.Stat(shot); err != nil {
				t.Fatalf("no screenshot: %v", err)
			}
		})
	}
}
