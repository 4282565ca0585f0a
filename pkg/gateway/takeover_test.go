package gateway

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
)

// Session takeover (issue 16 item 6): anyone holding a websocket
// session's sid tries to open another websocket or flashsocket on it
// through the victim's gateway, and to end it with ?disconnect through
// another, and to POST into it (packets in its name, 0::) through either;
// all are refused (counted), the victim's websocket goes on
// sending and receiving, and no log line prints a sid in full. (Through
// another gateway a second stream takes the session over: see openConn.) A polling session's
// ?disconnect is honoured on its own transport's path and on the 0.9
// client's path without a transport, refused on another transport's.
func TestStreamTakeoverRefused(t *testing.T) {
	var logs logBuffer
	transports := []string{TransportWebSocket, TransportFlashSocket, TransportHTMLFile, TransportXHRPolling, TransportJSONPPolling}
	tg := newLiveGateway(t, Config{Transports: transports, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	other := newLiveGatewayOn(t, tg.red, Config{Node: "gw-other", Transports: transports, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	held := tg.rejections(rejectSessionHeld)
	refusedDisc := tg.rejections(rejectDisconnectRefused)

	sid, victim := tg.openWS()
	for _, g := range []*liveGateway{tg} {
		for _, tr := range []string{TransportWebSocket, TransportFlashSocket} {
			ws, _, err := g.dialWS(tr, sid, nil)
			if err != nil {
				t.Fatalf("%s on %s: %v", tr, g.g.cfg.Node, err)
			}
			expectFrame(t, ws, "7:::1+0")
			if _, err := readFrame(t, ws); err == nil {
				t.Fatalf("%s on %s: still open after the refusal", tr, g.g.cfg.Node)
			}
			ws.Close()
		}
	}
	if got := tg.rejections(rejectSessionHeld) - held; got != 2 {
		t.Errorf("session_held counted %v times, want 2", got)
	}
	// ?disconnect from elsewhere: the official client's path and a
	// transport's.
	for _, p := range []string{"/socket.io/1//" + sid + "/?disconnect=1", "/socket.io/1/xhr-polling/" + sid + "?disconnect=1",
		"/socket.io/1/websocket/" + sid + "?disconnect=1"} {
		if code, body := other.get(p); code != http.StatusForbidden || body != "disconnect refused" {
			t.Errorf("GET %s: %d %q, want 403", p, code, body)
		}
	}
	if got := other.rejections(rejectDisconnectRefused) - refusedDisc; got != 3 {
		t.Errorf("disconnect_refused counted %v times, want 3", got)
	}
	// POSTs into the websocket session, on any POST path of either
	// gateway: a packet in its name, a disconnect. Refused, nothing sent.
	wrong := tg.rejections(rejectWrongTransport) + other.rejections(rejectWrongTransport)
	for _, g := range []*liveGateway{tg, other} {
		for _, tr := range []string{TransportXHRPolling, TransportJSONPPolling, TransportHTMLFile} {
			body := "0::"
			if tr == TransportJSONPPolling {
				body = "d=" + `%225%3A%3A%3A%7B%5C%22name%5C%22%3A%5C%22injected%5C%22%7D%22`
			}
			if code, answer := g.post("/socket.io/1/"+tr+"/"+sid, body); code != http.StatusOK || answer != wrongTransportPacket {
				t.Errorf("POST %s on %s into a websocket session: %d %q, want 200 %q", tr, g.g.cfg.Node, code, answer, wrongTransportPacket)
			}
		}
	}
	if got := tg.rejections(rejectWrongTransport) + other.rejections(rejectWrongTransport) - wrong; got != 6 {
		t.Errorf("wrong_transport counted %v times for the POSTs, want 6", got)
	}
	// The victim goes on: it sends, and gets what is routed to it.
	if err := victim.WriteMessage(websocket.TextMessage, []byte("3:::still me")); err != nil {
		t.Fatal(err)
	}
	tg.waitSignals(sid, "connect", "message still me")
	tg.publish(bus.Route{Op: bus.OpDeliver, SID: sid, Packet: "3:::for the victim", Time: time.Now().UnixMilli()})
	expectFrame(t, victim, "3:::for the victim")

	// Polling: another transport's path is refused, its own honoured.
	psid := tg.openPolling()
	if code, _ := tg.get("/socket.io/1/jsonp-polling/" + psid + "?disconnect=1"); code != http.StatusForbidden {
		t.Errorf("?disconnect on another transport's path: %d, want 403", code)
	}
	if code, _ := tg.get("/socket.io/1//" + psid + "/?disconnect=1"); code != http.StatusOK {
		t.Errorf("?disconnect on the 0.9 client's path: %d, want 200", code)
	}
	tg.waitSignals(psid, "connect", "disconnect reason=client")
	psid = tg.openPolling()
	if code, _ := tg.get("/socket.io/1/xhr-polling/" + psid + "?disconnect=1"); code != http.StatusOK {
		t.Errorf("?disconnect on its own transport's path: %d, want 200", code)
	}
	tg.waitSignals(psid, "connect", "disconnect reason=client")

	for _, s := range []string{sid, psid} {
		if lines := logs.lines(s); len(lines) > 0 {
			t.Errorf("a sid logged in full:\n%s", strings.Join(lines, "\n"))
		}
	}
	if len(logs.lines("reason=session_held")) == 0 || len(logs.lines("reason=disconnect_refused")) == 0 {
		t.Error("the refusals were not logged")
	}
}
