package protocol

import (
	"testing"
	"time"
)

// The exact bytes of the conformance checklist (conformance-0.9.md) that
// this package produces, by row.
func TestConformanceBytes(t *testing.T) {
	ev := func(id uint64, ack bool, ep, name, args string) string {
		return Packet{Type: Event, ID: id, HasID: id > 0, AckData: ack, Endpoint: ep,
			Data: AppendEvent(nil, name, []byte(args))}.String()
	}
	ack := func(ep string, id uint64, args string, has bool) string {
		return Packet{Type: Ack, Endpoint: ep, Data: AppendAck(nil, id, []byte(args), has)}.String()
	}
	hs := Handshake{SID: "sid", Heartbeat: 60 * time.Second, Close: 60 * time.Second,
		Transports: []string{"websocket", "xhr-polling", "jsonp-polling"}}
	tests := []struct {
		row       string
		got, want string
	}{
		{"1 handshake", hs.String(), "sid:60:60:websocket,xhr-polling,jsonp-polling"},
		{"3 handshake jsonp", string(AppendJSONP(nil, "0", []byte(hs.String()))), `io.j[0]("sid:60:60:websocket,xhr-polling,jsonp-polling");`},
		{"4 handshake refused jsonp", string(AppendJSONPError(nil, "2", "handshake unauthorized")), `io.j[2](new Error("handshake unauthorized"));`},
		{"8 connect", Packet{Type: Connect}.String(), "1::"},
		{"10 heartbeat", Packet{Type: Heartbeat}.String(), "2::"},
		{"12 idle poll", Packet{Type: Noop}.String(), "8::"},
		{"12 framed", string(AppendPayload(nil, []byte("1::"), []byte("3:::abc"))), "\ufffd3\ufffd1::\ufffd7\ufffd3:::abc"},
		{"15 jsonp poll", string(AppendJSONP(nil, "0", []byte("1::"))), `io.j[0]("1::");`},
		{"17 unknown sid", ErrorPacket("", ReasonClientNotHandshaken, AdviceReconnect).String(), "7:::1+0"},
		{"17 unknown sid jsonp", string(AppendJSONP(nil, "0", Encode(ErrorPacket("", ReasonClientNotHandshaken, AdviceReconnect)))), `io.j[0]("7:::1+0");`},
		{"18 data ack", ack("", 7, `["result"]`, true), `6:::7+["result"]`},
		{"18 data ack namespaced", ack("/nsp", 7, `["result"]`, true), `6::/nsp:7+["result"]`},
		{"18 ack without args", ack("", 7, "", false), `6:::7`},
		{"19 plain ack", ack("", 3, "", false), `6:::3`},
		{"20 server event with ack", ev(4, true, "", "e", `["x"]`), `5:4+::{"name":"e","args":["x"]}`},
		{"21 namespace connect", Packet{Type: Connect, Endpoint: "/chat"}.String(), "1::/chat"},
		{"21 namespace event", ev(0, false, "/chat", "m", `[1]`), `5::/chat:{"name":"m","args":[1]}`},
		{"22 namespace refused", ErrorPacket("/priv", ReasonUnauthorized, -1).String(), "7::/priv:2"},
		{"24 disconnect", Packet{Type: Disconnect}.String(), "0::"},
		{"25 namespace kick", Packet{Type: Disconnect, Endpoint: "/chat"}.String(), "0::/chat"},
		{"29 event without args", ev(0, false, "", "e", `[]`), `5:::{"name":"e"}`},
		{"unicode framing", string(AppendPayload(nil, []byte("3:::😀"), []byte("2::"))), "\ufffd6\ufffd3:::😀\ufffd3\ufffd2::"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("row %s: %q, want %q", tc.row, tc.got, tc.want)
		}
	}

	// Row 14 and 16: what the client sends decodes.
	var got []Packet
	err := DecodePayload([]byte("\ufffd3\ufffd1::\ufffd27\ufffd5:::{\"name\":\"x\",\"args\":[1]}"), 0, func(b []byte) error {
		p, err := Decode(b)
		got = append(got, p)
		return err
	})
	if err != nil || len(got) != 2 || got[0].Type != Connect || got[1].Type != Event {
		t.Fatalf("row 14: %+v %v", got, err)
	}
	name, args, err := ParseEvent(got[1].Data)
	if err != nil || name != "x" || string(args) != "[1]" {
		t.Fatalf("row 14 event: %q %s %v", name, args, err)
	}
	body, err := DecodeJSONPBody([]byte(`"5:7+::{\"name\":\"e\",\"args\":[\"a\"]}"`))
	if err != nil {
		t.Fatalf("row 16: %v", err)
	}
	p, err := Decode(body)
	if err != nil || p.Type != Event || p.ID != 7 || !p.AckData {
		t.Fatalf("row 18 request: %+v %v", p, err)
	}
}
