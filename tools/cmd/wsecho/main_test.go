package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// Every message comes back as it was sent, text and binary; a request that
// is no websocket upgrade is refused.
func TestEcho(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/any/path", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []struct {
		typ  int
		data string
	}{{websocket.TextMessage, "1"}, {websocket.BinaryMessage, "\x00\xff"}, {websocket.TextMessage, strings.Repeat("é", 3000)}} {
		if err := c.WriteMessage(m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil || typ != m.typ || string(got) != m.data {
			t.Fatalf("sent %d %q, got %d %.20q, %v", m.typ, m.data, typ, got, err)
		}
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a plain GET: %d, want 400", resp.StatusCode)
	}
}
