package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func samePacket(a, b Packet) bool {
	return a.Type == b.Type && a.ID == b.ID && a.HasID == b.HasID && a.AckData == b.AckData &&
		a.Endpoint == b.Endpoint && bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil)
}

func TestDecodeTable(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
		enc  string // the re-encoding when it differs from in
	}{
		{in: "0::", want: Packet{Type: Disconnect}},
		{in: "0::/chat", want: Packet{Type: Disconnect, Endpoint: "/chat"}},
		{in: "1::", want: Packet{Type: Connect}},
		{in: "1::/chat", want: Packet{Type: Connect, Endpoint: "/chat"}},
		{in: "1::/chat:?token=x", want: Packet{Type: Connect, Endpoint: "/chat", Data: []byte("?token=x")}},
		{in: "2::", want: Packet{Type: Heartbeat}},
		{in: "3:::hello", want: Packet{Type: Message, Data: []byte("hello")}},
		{in: "3:1::hi", want: Packet{Type: Message, ID: 1, HasID: true, Data: []byte("hi")}},
		{in: "3:1+::hi", want: Packet{Type: Message, ID: 1, HasID: true, AckData: true, Data: []byte("hi")}},
		{in: "3:1+::hi:with:colons", want: Packet{Type: Message, ID: 1, HasID: true, AckData: true, Data: []byte("hi:with:colons")}},
		{in: "3::/chat:a:b", want: Packet{Type: Message, Endpoint: "/chat", Data: []byte("a:b")}},
		{in: "3:::\n\r\x00", want: Packet{Type: Message, Data: []byte("\n\r\x00")}},
		{in: "3:::", want: Packet{Type: Message, Data: []byte{}}, enc: "3::"},
		{in: "3:::😀", want: Packet{Type: Message, Data: []byte("😀")}},
		{in: `4:::{"a":1}`, want: Packet{Type: JSON, Data: []byte(`{"a":1}`)}},
		{in: `4:9::[1,2]`, want: Packet{Type: JSON, ID: 9, HasID: true, Data: []byte(`[1,2]`)}},
		{in: `5:::{"name":"chat","args":["hi"]}`, want: Packet{Type: Event, Data: []byte(`{"name":"chat","args":["hi"]}`)}},
		{in: `5:3::{"name":"e"}`, want: Packet{Type: Event, ID: 3, HasID: true, Data: []byte(`{"name":"e"}`)}},
		{in: `5:3+:/chat:{"name":"e"}`, want: Packet{Type: Event, ID: 3, HasID: true, AckData: true, Endpoint: "/chat", Data: []byte(`{"name":"e"}`)}},
		{in: "6:::3", want: Packet{Type: Ack, Data: []byte("3")}},
		{in: `6:::3+["ok"]`, want: Packet{Type: Ack, Data: []byte(`3+["ok"]`)}},
		{in: `6::/chat:3+["ok"]`, want: Packet{Type: Ack, Endpoint: "/chat", Data: []byte(`3+["ok"]`)}},
		{in: "7:::1+0", want: Packet{Type: Error, Data: []byte("1+0")}},
		{in: "7::/chat:2", want: Packet{Type: Error, Endpoint: "/chat", Data: []byte("2")}},
		{in: "8::", want: Packet{Type: Noop}},
		{in: "3:0::x", want: Packet{Type: Message, ID: 0, HasID: true, Data: []byte("x")}},
		{in: "3:007::x", want: Packet{Type: Message, ID: 7, HasID: true, Data: []byte("x")}, enc: "3:7::x"},
		{in: "3:18446744073709551615::x", want: Packet{Type: Message, ID: 1<<64 - 1, HasID: true, Data: []byte("x")}},
	}
	for _, tc := range tests {
		got, err := DecodeString(tc.in)
		if err != nil {
			t.Errorf("Decode(%q): %v", tc.in, err)
			continue
		}
		if !samePacket(got, tc.want) {
			t.Errorf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		want := tc.enc
		if want == "" {
			want = tc.in
		}
		if enc := got.String(); enc != want {
			t.Errorf("Encode(Decode(%q)) = %q, want %q", tc.in, enc, want)
		}
	}
}

// Every type, with and without an id, a '+', an endpoint and data, decodes
// to its fields and encodes back to the same bytes.
func TestEveryTypeAndShape(t *testing.T) {
	for typ := Disconnect; typ <= Noop; typ++ {
		for _, id := range []string{"", "7", "7+", "18446744073709551615+"} {
			for _, ep := range []string{"", "/chat", "/a/b?c"} {
				for _, data := range []string{"", "x", `{"name":"e","args":[":"]}`, "a:b::c"} {
					in := fmt.Sprintf("%d:%s:%s", typ, id, ep)
					if data != "" {
						in += ":" + data
					}
					p, err := DecodeString(in)
					if err != nil {
						t.Fatalf("Decode(%q): %v", in, err)
					}
					wantID := strings.TrimSuffix(id, "+")
					if p.Type != typ || p.HasID != (id != "") || p.AckData != strings.HasSuffix(id, "+") ||
						(p.HasID && fmt.Sprint(p.ID) != wantID) || p.Endpoint != ep || string(p.Data) != data {
						t.Fatalf("Decode(%q) = %+v", in, p)
					}
					if got := string(Encode(p)); got != in {
						t.Fatalf("Encode(Decode(%q)) = %q", in, got)
					}
				}
			}
		}
	}
}

func TestEncodeReference(t *testing.T) {
	tests := []struct {
		p    Packet
		want string
	}{
		{Packet{Type: Connect}, "1::"},
		{Packet{Type: Heartbeat}, "2::"},
		{Packet{Type: Noop}, "8::"},
		{Packet{Type: Disconnect, Endpoint: "/chat"}, "0::/chat"},
		{Packet{Type: Connect, Endpoint: "/chat"}, "1::/chat"},
		{Packet{Type: Message, Data: []byte("hi")}, "3:::hi"},
		{Packet{Type: Message, Data: []byte{}}, "3::"},
		{Packet{Type: Event, ID: 1, HasID: true, AckData: true, Data: []byte(`{"name":"a"}`)}, `5:1+::{"name":"a"}`},
		{Packet{Type: Ack, Data: AppendAck(nil, 3, []byte(`["ok"]`), true)}, `6:::3+["ok"]`},
		{Packet{Type: Error, Data: []byte("1+0")}, "7:::1+0"},
		{Packet{Type: Event, AckData: true, Data: []byte(`{"name":"a"}`)}, `5:::{"name":"a"}`}, // '+' needs an id
		{Packet{Type: 12}, "12::"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v encodes as %q, want %q", tc.p, got, tc.want)
		}
		buf := []byte("prefix")
		if got := string(AppendPacket(buf, tc.p)); got != "prefix"+tc.want {
			t.Errorf("AppendPacket = %q", got)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", ErrMalformed},
		{"5", ErrMalformed},
		{"5:", ErrMalformed},
		{"5:1", ErrMalformed},
		{"5:1+", ErrMalformed},
		{":", ErrBadType},
		{"::", ErrBadType},
		{"9::", ErrBadType},
		{"x::", ErrBadType},
		{"55::", ErrBadType},
		{"05::", ErrBadType},
		{"-1::", ErrBadType},
		{"\ufffd::", ErrBadType},
		{"5:a::", ErrBadID},
		{"5:+::", ErrBadID},
		{"5:1++::", ErrBadID},
		{"5:+1::", ErrBadID},
		{"5:-1::", ErrBadID},
		{"5: 1::", ErrBadID},
		{"5:1 ::", ErrBadID},
		{"3:18446744073709551616::x", ErrBadID},
		{"3:99999999999999999999::x", ErrBadID},
	}
	for _, tc := range tests {
		p, err := DecodeString(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("Decode(%q) error = %v, want %v", tc.in, err, tc.want)
		}
		if !samePacket(p, Packet{}) {
			t.Errorf("Decode(%q) returned %+v with its error", tc.in, p)
		}
	}
	// Errors quote at most a bounded part of the input.
	_, err := Decode(append([]byte("5:"), bytes.Repeat([]byte("x"), 1<<16)...))
	if !errors.Is(err, ErrMalformed) || len(err.Error()) > 100 {
		t.Errorf("long malformed input: %d-byte error %v", len(err.Error()), err)
	}
}

func TestTypeNames(t *testing.T) {
	for i, want := range []string{"disconnect", "connect", "heartbeat", "message", "json", "event", "ack", "error", "noop", "unknown"} {
		if got := PacketType(i).String(); got != want {
			t.Errorf("PacketType(%d) = %q, want %q", i, got, want)
		}
	}
	if got := PacketType(255).String(); got != "unknown" {
		t.Errorf("PacketType(255) = %q", got)
	}
}

// Decode aliases its input: Data points into it, with no copy.
func TestDecodeAliases(t *testing.T) {
	b := []byte("3:::hello")
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b[4] = 'j'
	if string(p.Data) != "jello" {
		t.Fatalf("Data does not alias the input: %q", p.Data)
	}
}

// The hot path does not allocate: decoding a default-namespace packet,
// walking a framed payload, encoding into a reused buffer.
func TestHotPathAllocations(t *testing.T) {
	pkt := []byte(`5:12+::{"name":"echo","args":[1,"two"]}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = Decode(pkt) }); n != 0 {
		t.Errorf("Decode allocates %v times", n)
	}
	payload := AppendPayload(nil, pkt, []byte("3:::😀"), []byte("2::"))
	count := 0
	fn := func([]byte) error { count++; return nil }
	if n := testing.AllocsPerRun(100, func() { _ = DecodePayload(payload, 1<<20, fn) }); n != 0 {
		t.Errorf("DecodePayload allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = DecodePayload(pkt, 1<<20, fn) }); n != 0 {
		t.Errorf("DecodePayload of one packet allocates %v times", n)
	}
	buf := make([]byte, 0, 256)
	p := Packet{Type: Event, ID: 9, HasID: true, AckData: true, Endpoint: "/chat", Data: pkt[9:]}
	if n := testing.AllocsPerRun(100, func() { buf = AppendPacket(buf[:0], p) }); n != 0 {
		t.Errorf("AppendPacket allocates %v times", n)
	}
	packets := [][]byte{pkt, []byte("3:::😀")}
	if n := testing.AllocsPerRun(100, func() { buf = AppendPayload(buf[:0], packets...) }); n != 0 {
		t.Errorf("AppendPayload allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendEvent(buf[:0], "echo", []byte(`[1,"\u2028"]`)) }); n != 0 {
		t.Errorf("AppendEvent allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSONP(buf[:0], "0", payload) }); n != 0 {
		t.Errorf("AppendJSONP allocates %v times", n)
	}
	// ParseEvent validates with encoding/json, whose scanner comes from a
	// sync.Pool; a -race build drops pooled items at random, so the count is
	// checked in a normal build only (make test runs this test without -race
	// too).
	data := pkt[7:]
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseEvent(data) }); n > 1 && !raceEnabled {
		t.Errorf("ParseEvent allocates %v times, want at most 1 (the name)", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _, _ = ParseAck([]byte(`12+["a"]`)) }); n != 0 {
		t.Errorf("ParseAck allocates %v times", n)
	}
}
