package gateway

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
)

// logBuffer is a log destination safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines holding s.
func (b *logBuffer) lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// The log flood of issue 16: 20,000 one-byte garbage frames from one
// websocket. Every rejection read is counted, but only a line or two is
// logged, and the connection is closed after Config.MaxBadPackets in a row
// (reason bad_input, counted); a websocket beside it is unaffected, and a
// client whose bad packets are interleaved with good ones is not cut off.
func TestWebSocketGarbageFlood(t *testing.T) {
	var logs logBuffer
	tg := newLiveGateway(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if tg.g.cfg.MaxBadPackets != DefaultMaxBadPackets {
		t.Fatalf("MaxBadPackets %d, want the default", tg.g.cfg.MaxBadPackets)
	}
	sid, ws := tg.openWS()
	bsid, bystander := tg.openWS()
	malformed := tg.rejections(rejectMalformedPacket)

	sent := 0
	for ; sent < 20000; sent++ {
		if ws.WriteMessage(websocket.TextMessage, []byte("x")) != nil {
			break // closed by the gateway
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("the flooding websocket is still open")
			}
			break
		}
	}
	tg.waitSignals(sid, "connect", "disconnect reason=bad_input")
	if got, want := tg.rejections(rejectMalformedPacket)-malformed, float64(DefaultMaxBadPackets+1); got != want {
		t.Errorf("malformed packets counted %v, want %v (the frames read before the close)", got, want)
	}
	m := tg.g.metrics.Disconnects.WithLabelValues(string(bus.ReasonBadInput))
	waitUntil(t, "the bad_input disconnect counted", func() bool { return counterValue(t, m) == 1 })
	lines := logs.lines("msg=rejected")
	t.Logf("%d frames sent before the close; %d rejected lines logged", sent, len(lines))
	if len(lines) > 2 {
		t.Errorf("%d rejected lines logged for one burst, want at most 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if n := len(logs.lines("too many rejected packets")); n != 1 {
		t.Errorf("%d lines about the disconnect, want 1", n)
	}

	// The bystander: its packets go on; bad ones among good ones (fewer
	// than the bound in a row) do not cut it off.
	for i := range 3 * DefaultMaxBadPackets {
		p := "3:::ok"
		if i%DefaultMaxBadPackets != 0 {
			p = "x"
		}
		send(t, bystander, p)
	}
	send(t, bystander, "3:::last")
	tg.waitSignals(bsid, "connect", "message ok", "message ok", "message ok", "message last")
	// Rate-limited, still logged: after a second the next line comes, with
	// how many went unlogged.
	time.Sleep(rejectLogEvery)
	send(t, bystander, "x")
	waitUntil(t, "the next rejected line", func() bool {
		for _, l := range logs.lines("msg=rejected") {
			if strings.Contains(l, "unlogged=") {
				return true
			}
		}
		return false
	})
}

// A rejected packet on a websocket is answered: an error packet on its
// endpoint ("7::" when it does not decode), and its ack when it carried an
// ack id, so the client neither sends on unaware nor waits forever. The
// session goes on.
func TestWebSocketRejectedPacketAnswered(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	sid, ws := tg.openWS()
	send(t, ws, "1::/chat")
	expectFrame(t, ws, "1::/chat")
	for _, tc := range []struct {
		packet string
		want   []string
	}{
		{"x", []string{"7::"}},        // malformed
		{"5:::{bad", []string{"7::"}}, // a bad event, no ack id
		{"5:3+::{bad", []string{"7::", `6:::3+[{"error":"bad_event"}]`}}, // a data ack the app would have answered
		{"5:4::{bad", []string{"7::", "6:::4"}},                          // a plain ack, as the reference answers it
		{"4:5+:/chat:{", []string{"7::/chat", `6::/chat:5+[{"error":"bad_json"}]`}},
		{`5:6+:/nope:{"name":"a"}`, []string{"7::/nope", `6::/nope:6+[{"error":"namespace_not_connected"}]`}},
		{"3:7:/nope:hi", []string{"7::/nope", "6::/nope:7"}},
		{"6:::x", []string{"7::"}}, // a bad ack
		{"7:::1+0", nil},           // an error packet is not answered with another
	} {
		send(t, ws, tc.packet)
		for _, w := range tc.want {
			expectFrame(t, ws, w)
		}
	}
	// Nothing else was written: the next frame is the answer to a good packet.
	send(t, ws, `5:9::{"name":"ok"}`)
	expectFrame(t, ws, "6:::9")
	tg.waitSignals(sid, "connect", "connect /chat", `event ok id=9`)
}

// A websocket client that breaks RFC 6455 (here a frame with a reserved
// opcode, then one with reserved bits set) is closed with 1002 by the
// websocket library; each is counted and logged as websocket_protocol.
func TestWebSocketProtocolViolationCounted(t *testing.T) {
	var logs logBuffer
	tg := newLiveGateway(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	before := tg.rejections(rejectWebSocketProtocol)
	for i, frame := range [][]byte{
		{0x83, 0x80, 1, 2, 3, 4}, // FIN, opcode 3 (reserved); masked, empty
		{0xC1, 0x80, 1, 2, 3, 4}, // FIN, RSV1, text; masked, empty
	} {
		_, ws := tg.openWS()
		if _, err := ws.UnderlyingConn().Write(frame); err != nil {
			t.Fatal(err)
		}
		_, _, err := ws.ReadMessage()
		var closed *websocket.CloseError
		if !errors.As(err, &closed) || closed.Code != websocket.CloseProtocolError {
			t.Fatalf("frame %d: %v, want close 1002", i, err)
		}
		waitUntil(t, "the violation counted", func() bool { return tg.rejections(rejectWebSocketProtocol)-before == float64(i+1) })
	}
	if len(logs.lines("reason=websocket_protocol")) == 0 {
		t.Error("the violation was not logged")
	}
}
