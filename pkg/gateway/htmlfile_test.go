package gateway

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
)

// htmlStream is an open htmlfile response being read.
type htmlStream struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

func (tg *liveGateway) openHTMLFile(sid string) *htmlStream {
	tg.t.Helper()
	resp, err := tg.srv.Client().Get(tg.srv.URL + "/socket.io/1/htmlfile/" + sid)
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		tg.t.Fatalf("htmlfile: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	h := &htmlStream{t: tg.t, resp: resp, r: bufio.NewReader(resp.Body)}
	header := make([]byte, len(protocol.HTMLFileHeader()))
	if _, err := h.r.Read(header[:1]); err != nil {
		tg.t.Fatal(err)
	}
	if _, err := h.r.Discard(len(header) - 1); err != nil {
		tg.t.Fatal(err)
	}
	return h
}

// expect reads the next script element and checks its packet.
func (h *htmlStream) expect(packet string) {
	h.t.Helper()
	done := make(chan struct{})
	var got string
	var err error
	go func() {
		defer close(done)
		got, err = h.r.ReadString('>') // <script>
		if err == nil {
			var rest string
			rest, err = h.r.ReadString('>') // ...</script>
			got += rest
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no script for %q", packet)
	}
	if want := string(protocol.AppendHTMLFileScript(nil, []byte(packet))); err != nil || got != want {
		h.t.Fatalf("got %q (%v), want %q", got, err, want)
	}
}

// An htmlfile stream: its 1::, route deliveries as script elements, POSTs
// (plain acks answered through the stream), a close route, an unknown
// session's 7:::1+0, and the end of the request as transport_close.
func TestHTMLFile(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	sid := tg.handshake()
	h := tg.openHTMLFile(sid)
	h.expect("1::")
	if code, body := tg.post("/socket.io/1/htmlfile/"+sid, `5:3::{"name":"x"}`); code != 200 || body != "1" {
		t.Fatalf("POST: %d %q", code, body)
	}
	h.expect("6:::3")
	tg.waitSignals(sid, "connect", "event x id=3")
	tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::</script>"})
	h.expect("3:::</script>")
	tg.publish(bus.Route{Op: bus.OpClose, SID: sid, Arg: string(bus.ReasonServer), Packet: "0::"})
	h.expect("0::")
	waitUntil(t, "stream released", func() bool { return tg.g.conn(sid) == nil })

	u := tg.openHTMLFile("nosuchsession")
	u.expect("7:::1+0")

	sid = tg.handshake()
	h = tg.openHTMLFile(sid)
	h.expect("1::")
	h.resp.Body.Close()
	tg.waitSignals(sid, "connect", "disconnect reason=transport_close")
}

// Heartbeats: a websocket gets 2:: every interval and lives as long as it
// answers; silent for the heartbeat timeout, it is closed with reason
// heartbeat_timeout. An htmlfile stream's POSTs are its signs of life.
func TestHeartbeats(t *testing.T) {
	tg := newLiveGateway(t, Config{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 600 * time.Millisecond})
	sid, ws := tg.openWS()
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		expectFrame(t, ws, "2::")
		send(t, ws, "2::")
	}
	silentFrom := time.Now()
	for {
		f, err := readFrame(t, ws)
		if err != nil {
			break
		}
		if f != "2::" {
			t.Fatalf("frame %q", f)
		}
	}
	if d := time.Since(silentFrom); d < 400*time.Millisecond {
		t.Errorf("closed %v after the last answer, before the heartbeat timeout", d)
	}
	tg.waitSignals(sid, "connect", "disconnect reason=heartbeat_timeout")

	sid = tg.handshake()
	h := tg.openHTMLFile(sid)
	h.expect("1::")
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		h.expect("2::")
		if code, _ := tg.post("/socket.io/1/htmlfile/"+sid, "2::"); code != 200 {
			t.Fatalf("POST: %d", code)
		}
	}
	if tg.g.conn(sid) == nil {
		t.Fatal("htmlfile stream ended while its client POSTed")
	}
	tg.waitSignals(sid, "connect", "disconnect reason=heartbeat_timeout")
}
