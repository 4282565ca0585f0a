package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
)

// dialWS opens transport (websocket or flashsocket) for sid.
func (tg *liveGateway) dialWS(transport, sid string, header http.Header) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(tg.srv.URL, "http") + "/socket.io/1/" + transport + "/" + sid
	return websocket.DefaultDialer.Dial(u, header)
}

// openWS handshakes and opens a websocket, reading its 1::.
func (tg *liveGateway) openWS() (string, *websocket.Conn) {
	tg.t.Helper()
	sid := tg.handshake()
	ws, _, err := tg.dialWS(TransportWebSocket, sid, nil)
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.t.Cleanup(func() { ws.Close() })
	expectFrame(tg.t, ws, "1::")
	return sid, ws
}

// readFrame reads the next text frame within 5 s.
func readFrame(t *testing.T, ws *websocket.Conn) (string, error) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := ws.ReadMessage()
	if err == nil && typ != websocket.TextMessage {
		t.Fatalf("frame type %d", typ)
	}
	return string(b), err
}

func expectFrame(t *testing.T, ws *websocket.Conn, want string) {
	t.Helper()
	got, err := readFrame(t, ws)
	if err != nil || got != want {
		t.Fatalf("frame %q (%v), want %q", got, err, want)
	}
}

func send(t *testing.T, ws *websocket.Conn, packet string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(packet)); err != nil {
		t.Fatal(err)
	}
}

// A websocket session: its packets become signals, plain acks are answered
// at once, namespaces are joined and left, and route messages from the
// gateway's channel reach it (deliveries, room and namespace broadcasts,
// with the exception and after leaves), until a close route ends it.
func TestWebSocketSession(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	sid, ws := tg.openWS()
	other, ws2 := tg.openWS()
	tg.waitSignals(sid, "connect")

	send(t, ws, `5:1::{"name":"chat","args":["hi"]}`)
	expectFrame(t, ws, "6:::1")
	send(t, ws, "2::") // a heartbeat answer: no signal
	send(t, ws, "1::/chat")
	expectFrame(t, ws, "1::/chat")
	send(t, ws, "3::/chat:hello")
	send(t, ws, "3::/nope:hello") // not joined: rejected, the client told
	expectFrame(t, ws, "7::/nope")
	tg.waitSignals(sid, "connect", `event chat ["hi"] id=1`, "connect /chat", "message /chat hello")
	if tg.rejections(rejectNamespaceNotConnected) != 1 {
		t.Errorf("namespace_not_connected: %v", tg.rejections(rejectNamespaceNotConnected))
	}
	before := tg.rejections(rejectBinaryFrame)
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "binary frame rejected", func() bool { return tg.rejections(rejectBinaryFrame) == before+1 })

	// Routes. The last packet sent to ws in each step tells the earlier
	// ones have been applied in order.
	tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::direct", Time: time.Now().UnixMilli()})
	expectFrame(t, ws, "3:::direct")
	tg.publish(bus.Route{Op: bus.OpJoin, SID: sid, Arg: "/chat"})            // the namespace, confirmed
	tg.publish(bus.Route{Op: bus.OpJoin, SID: sid, Arg: "/chat", Room: "r"}) // a room
	tg.publish(bus.Route{Op: bus.OpJoin, SID: other, Arg: "/chat", Room: "r"})
	tg.publish(bus.Route{Op: bus.OpBroadcast, Arg: "/chat", Room: "r", SID: other, Packet: "5::/chat:{\"name\":\"room\"}"})
	expectFrame(t, ws, "5::/chat:{\"name\":\"room\"}")
	tg.publish(bus.Route{Op: bus.OpBroadcast, Arg: "", Packet: "3:::all", Time: time.Now().UnixMilli()})
	expectFrame(t, ws, "3:::all")
	expectFrame(t, ws2, "3:::all") // other got no room broadcast: it was the exception
	tg.publish(bus.Route{Op: bus.OpBroadcast, Arg: "/chat", Packet: "3::/chat:ns"})
	expectFrame(t, ws, "3::/chat:ns")                                                      // other is not in /chat
	tg.publish(bus.Route{Op: bus.OpBroadcast, Arg: "", Room: "r", Packet: "3:::wrong ns"}) // room r of "": nobody
	tg.publish(bus.Route{Op: bus.OpLeave, SID: sid, Arg: "/chat", Room: "r"})
	tg.publish(bus.Route{Op: bus.OpBroadcast, Arg: "/chat", Room: "r", Packet: "3::/chat:left room"})
	expectFrame(t, ws2, "3::/chat:left room")
	tg.publish(bus.Route{Op: bus.OpLeave, SID: sid, Arg: "/chat"})
	tg.publish(bus.Route{Op: bus.OpBroadcast, Arg: "/chat", Packet: "3::/chat:left ns"})
	tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::marker"})
	expectFrame(t, ws, "3:::marker")
	// Routes for sessions not held here, and malformed ones, are harmless.
	before = tg.rejections(rejectBadRoute)
	for _, msg := range []string{"D\nnobody\n0\n3:::x", "J\nnobody\n/chat\n", "L\nnobody\n/chat\n", "C\nnobody\nclient\n0::",
		"W\nnobody\n1", "K\nnobody\n1", "P\nnonce\n", "A\nnobody\n1\n\n", "Z\n", "M\nxx"} {
		tg.appendRoute(0, msg)
	}
	waitUntil(t, "bad routes rejected", func() bool { return tg.rejections(rejectBadRoute) == before+2 })
	// A batch of routes (M) is applied in order.
	batch := "M\n" + routeItem(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::b1"}) + routeItem(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::b2"})
	tg.appendRoute(tg.keys.PartitionOf(sid), batch)
	expectFrame(t, ws, "3:::b1")
	expectFrame(t, ws, "3:::b2")

	// A ping is answered with its pong.
	pong := make(chan string, 1)
	ws.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := ws.WriteControl(websocket.PingMessage, []byte("hey"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The pong handler runs inside reads: read deliveries until it has.
	for i := 0; ; i++ {
		tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::after ping"})
		expectFrame(t, ws, "3:::after ping")
		select {
		case p := <-pong:
			if p != "hey" {
				t.Errorf("pong %q", p)
			}
		case <-time.After(100 * time.Millisecond):
			if i < 50 {
				continue
			}
			t.Error("no pong")
		}
		break
	}

	// A close route writes its packet and closes the connection.
	tg.publish(bus.Route{Op: bus.OpClose, SID: sid, Arg: string(bus.ReasonServer), Packet: "0::"})
	expectFrame(t, ws, "0::")
	// (without a close frame: see takeLocked)
	if f, err := readFrame(t, ws); err == nil {
		t.Errorf("after the close route: frame %q, want the connection closed", f)
	}
	waitUntil(t, "connection released", func() bool { return tg.g.conn(sid) == nil })

	// The other session ends with its client's 0::.
	send(t, ws2, "0::")
	tg.waitSignals(other, "disconnect reason=client")
	waitUntil(t, "connection released", func() bool { return tg.g.conn(other) == nil && tg.g.held.Load() == 0 })
}

// A client's close frame is echoed with its code and ends the session with
// reason transport_close; so does a connection that just drops.
func TestWebSocketClientClose(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	sid, ws := tg.openWS()
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye")
	if err := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(t, ws); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after a close frame: %v, want close 1001 echoed", err)
	}
	tg.waitSignals(sid, "connect", "disconnect reason=transport_close")

	sid, ws = tg.openWS()
	ws.NetConn().Close()
	tg.waitSignals(sid, "connect", "disconnect reason=transport_close")
	waitUntil(t, "connections released", func() bool { return tg.g.held.Load() == 0 })
}

// What a websocket request is refused for: no upgrade, an origin not
// allowed, an unknown session (7:::1+0, then closed), a session opened on
// another transport, and flashsocket when not enabled.
func TestWebSocketRefused(t *testing.T) {
	tg := newLiveGateway(t, Config{Origins: []string{"example.com:*"}})
	allowed := http.Header{"Origin": {"http://example.com"}}
	code, _, _ := tg.do(http.MethodGet, "/socket.io/1/websocket/abc", "", allowed)
	if code != http.StatusBadRequest || tg.rejections(rejectNotWebSocket) != 1 {
		t.Errorf("plain GET: %d, %v rejections", code, tg.rejections(rejectNotWebSocket))
	}
	sid := tg.handshakeFrom(allowed)
	if _, resp, err := tg.dialWS(TransportWebSocket, sid, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("bad origin: %v", err)
	}
	if tg.rejections(rejectBadOrigin) != 1 {
		t.Errorf("bad_origin rejections: %v", tg.rejections(rejectBadOrigin))
	}
	ws, _, err := tg.dialWS(TransportWebSocket, "nosuchsession", allowed)
	if err != nil {
		t.Fatal(err)
	}
	expectFrame(t, ws, "7:::1+0")
	if _, err := readFrame(t, ws); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after 7:::1+0: %v, want close 1000", err)
	}
	ws.Close()
	if tg.rejections(rejectUnknownSID) != 1 {
		t.Errorf("unknown_sid rejections: %v", tg.rejections(rejectUnknownSID))
	}
	// A session polling already cannot be taken over by a websocket.
	code, body, _ := tg.do(http.MethodGet, "/socket.io/1/xhr-polling/"+sid, "", allowed)
	if code != 200 || body != "1::" {
		t.Fatalf("poll: %d %q", code, body)
	}
	ws, _, err = tg.dialWS(TransportWebSocket, sid, allowed)
	if err != nil {
		t.Fatal(err)
	}
	expectFrame(t, ws, "7:::0")
	ws.Close()
	if _, resp, err := tg.dialWS(TransportFlashSocket, sid, allowed); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("flashsocket not enabled: %v", err)
	}
}

// flashsocket is served like websocket when enabled.
func TestFlashSocket(t *testing.T) {
	tg := newLiveGateway(t, Config{Transports: []string{TransportFlashSocket}})
	sid := tg.handshake()
	ws, _, err := tg.dialWS(TransportFlashSocket, sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	expectFrame(t, ws, "1::")
	send(t, ws, "3:::flash")
	tg.waitSignals(sid, "connect", "message flash")
}

// routeItem encodes r as one item of an M batch.
func routeItem(r bus.Route) string {
	s := r.String()
	return strconv.Itoa(len(s)) + "\n" + s
}
