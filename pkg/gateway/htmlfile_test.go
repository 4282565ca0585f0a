package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

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

// An htmlfile client that stops reading (its TCP window full) fails the
// stream's write after writeTimeout: the stream is closed, its connection
// no longer counted, and the timeout counted. The write blocked for good
// before (the handler, the connection and the bytes queued held until the
// client closed).
func TestHTMLFileClientNotReadingIsClosed(t *testing.T) {
	tg := newLiveGateway(t, Config{SendQueueBytes: 64 << 20}) // no overflow: the write alone must end it
	sid := tg.handshake()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", tg.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /socket.io/1/htmlfile/%s HTTP/1.1\r\nHost: x\r\n\r\n", sid); err != nil {
		t.Fatal(err)
	}
	streams := func() float64 {
		var m dto.Metric
		if err := tg.g.metrics.Connections.WithLabelValues(TransportHTMLFile).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	waitUntil(t, "the stream open", func() bool { return streams() == 1 })
	big := "3:::" + strings.Repeat("x", 1<<20)
	for range 16 { // more than the kernel's buffers hold
		tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: big})
	}
	deadline := time.Now().Add(writeTimeout + 10*time.Second)
	for streams() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stream of a client that does not read is still open %v after its last write began", writeTimeout+10*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var m dto.Metric
	if err := tg.g.metrics.WriteTimeouts.WithLabelValues(TransportHTMLFile).Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("write timeouts counted: %v (%v), want 1", m.GetCounter().GetValue(), err)
	}
}
