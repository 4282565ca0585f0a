package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ws-echo drives a websocket echo server in a closed loop and counts what
// came back; a server that answers something else counts as errors.
func TestWSEchoScenario(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle bool
	}{{"echo", false}, {"wrong answers", true}} {
		t.Run(tc.name, func(t *testing.T) {
			up := websocket.Upgrader{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				for {
					typ, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					if tc.mangle {
						msg = append(msg, 'x')
					}
					if c.WriteMessage(typ, msg) != nil {
						return
					}
				}
			}))
			defer srv.Close()
			res, err := wsEchoScenario(context.Background(), config{urls: []string{srv.URL}, clients: 5, concurrency: 5, duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Connected != 5 {
				t.Fatalf("%d connected, want 5", res.Connected)
			}
			if tc.mangle && (res.Ops != 0 || res.Errors == 0) {
				t.Fatalf("wrong answers: %d ops, %d errors", res.Ops, res.Errors)
			}
			if !tc.mangle && (res.Ops == 0 || res.Errors != 0 || res.P99ms <= 0) {
				t.Fatalf("echo: %d ops, %d errors, p99 %v", res.Ops, res.Errors, res.P99ms)
			}
		})
	}
}
