package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Session binding (gateway -session-binding, issue 16 item 6) with the
// official client unchanged, in Chromium, from a page the gateway serves:
// every transport keeps its session and loses nothing, while requests that
// hold a live session's id but not its cookie (a websocket or htmlfile
// takeover, a POST, ?disconnect) are refused with 403 and change nothing.
func TestSessionBindingBrowser(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/chromium"); err != nil && os.Getenv("CHROMIUM") == "" {
		need(t, "chromium is not installed (apt-get install chromium)")
	}
	script := nodeScript(t, "../browser/steady.js")
	root, _ := filepath.Abs("../..")
	t.Setenv("REALTIME_SESSION_BINDING_SECRET", "a test secret of 32 bytes, or so!")
	c := newCluster(t)
	gw := c.gateway("a", "-session-binding", "-static", filepath.Join(root, "test/browser"),
		"-client-script", filepath.Join(root, "test/node_modules/socket.io-client/dist/socket.io.js"))
	c.worker("w", "echo")
	// htmlfile needs IE's ActiveXObject: the 0.9 client never picks it in
	// Chromium (TestSessionBinding covers its requests).
	for _, transport := range []string{"websocket", "xhr-polling", "jsonp-polling"} {
		t.Run(transport, func(t *testing.T) {
			// Chromium's jsonp-polling clients make a round trip in
			// seconds here: they need longer to make progress.
			seconds := "6"
			if transport == "jsonp-polling" {
				seconds = "12"
			}
			start := time.Now()
			done := make(chan nodeResult, 1)
			go runNodeAsync(done, script, "--url", "http://"+gw.addr, "--same-origin", "--transport", transport,
				"--clients", "2", "--seconds", seconds, "--expect", "same-session")
			// Once the clients talk, hijack each live session with its id
			// alone.
			sids := waitSessions(t, c, start, 2, 15*time.Second)
			for _, sid := range sids {
				for _, tr := range []string{"websocket", "flashsocket"} {
					ws, resp, err := websocket.DefaultDialer.Dial("ws://"+gw.addr+"/socket.io/1/"+tr+"/"+sid, nil)
					if err == nil {
						ws.Close()
						t.Errorf("%s takeover of a bound session opened", tr)
					} else if resp == nil || resp.StatusCode != http.StatusForbidden {
						t.Errorf("%s takeover of a bound session: %v, want 403", tr, err)
					}
				}
				for _, req := range [][2]string{
					{http.MethodPost, "/socket.io/1/xhr-polling/" + sid + "?t=1"},
					{http.MethodGet, "/socket.io/1/htmlfile/" + sid + "?t=2"},
					{http.MethodGet, "/socket.io/1//" + sid + "/?disconnect=1"},
				} {
					r, _ := http.NewRequest(req[0], gw.url(req[1]), strings.NewReader("0::"))
					resp, err := http.DefaultClient.Do(r)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("%s %s without the cookie: %d, want 403", req[0], req[1], resp.StatusCode)
					}
				}
			}
			r := <-done
			if r.err != nil || !strings.Contains(r.out, " passed, 0 failed") {
				t.Fatalf("clients with session binding, under takeover attempts: %v\n%s", r.err, r.out)
			}
			for _, sid := range sids {
				if !strings.Contains(r.out, sid) {
					t.Errorf("session %s is not one the clients kept:\n%s", sid, r.out)
				}
			}
		})
	}
	if !strings.Contains(gw.logText(), "session_binding") {
		t.Error("the refusals were not logged")
	}
}

// waitSessions waits until n sessions created since start have a transport
// open and returns their ids.
func waitSessions(t *testing.T, c *cluster, start time.Time, n int, within time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var open []string
		// Every session with a transport open is in the default
		// namespace's set.
		for sid := range c.connected(ctx) {
			f, _ := c.rdb.HMGet(ctx, c.keys.Session(sid), "st", "ct").Result()
			st, _ := f[0].(string)
			ct, _ := strconv.ParseInt(fmt.Sprint(f[1]), 10, 64)
			if st == "open" && ct >= start.UnixMilli() {
				open = append(open, sid)
			}
		}
		if len(open) >= n {
			return open
		}
	}
	t.Fatalf("%d sessions did not open within %v", n, within)
	return nil
}
