package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDecodeEncode(t *testing.T) {
	tests := []struct {
		in   string
		want Packet
	}{
		{"0::", Packet{Type: Disconnect}},
		{"0::/chat", Packet{Type: Disconnect, Endpoint: "/chat"}},
		{"1::", Packet{Type: Connect}},
		{"1::/chat:?token=x", Packet{Type: Connect, Endpoint: "/chat", Data: []byte("?token=x")}},
		{"2::", Packet{Type: Heartbeat}},
		{"3:::hello", Packet{Type: Message, Data: []byte("hello")}},
		{"3:1::hi", Packet{Type: Message, ID: 1, HasID: true, Data: []byte("hi")}},
		{"3:1+::hi:with:colons", Packet{Type: Message, ID: 1, HasID: true, AckData: true, Data: []byte("hi:with:colons")}},
		{`4:::{"a":1}`, Packet{Type: JSON, Data: []byte(`{"a":1}`)}},
		{`5:::{"name":"chat","args":["hi"]}`, Packet{Type: Event, Data: []byte(`{"name":"chat","args":["hi"]}`)}},
		{`5:3+:/chat:{"name":"e"}`, Packet{Type: Event, ID: 3, HasID: true, AckData: true, Endpoint: "/chat", Data: []byte(`{"name":"e"}`)}},
		{"6:::3", Packet{Type: Ack, Data: []byte("3")}},
		{`6::/chat:3+["ok"]`, Packet{Type: Ack, Endpoint: "/chat", Data: []byte(`3+["ok"]`)}},
		{"7:::1+0", Packet{Type: Error, Data: []byte("1+0")}},
		{"7::/chat:2", Packet{Type: Error, Endpoint: "/chat", Data: []byte("2")}},
		{"8::", Packet{Type: Noop}},
		{"3:18446744073709551615::x", Packet{Type: Message, ID: 1<<64 - 1, HasID: true, Data: []byte("x")}},
	}
	for _, tc := range tests {
		got, err := DecodeString(tc.in)
		if err != nil {
			t.Errorf("Decode(%q): %v", tc.in, err)
			continue
		}
		if got.Type != tc.want.Type || got.ID != tc.want.ID || got.HasID != tc.want.HasID ||
			got.AckData != tc.want.AckData || got.Endpoint != tc.want.Endpoint || !bytes.Equal(got.Data, tc.want.Data) {
			t.Errorf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if enc := got.String(); enc != tc.in {
			t.Errorf("Encode(Decode(%q)) = %q", tc.in, enc)
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
		{"9::", ErrBadType},
		{"x::", ErrBadType},
		{"55::", ErrMalformed},
		{"5:a::", ErrBadID},
		{"5:+::", ErrBadID},
		{"5:1++::", ErrBadID},
		{"3:18446744073709551616::x", ErrBadID},
	}
	for _, tc := range tests {
		if _, err := DecodeString(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%q) error = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestTypeNames(t *testing.T) {
	for i, want := range []string{"disconnect", "connect", "heartbeat", "message", "json", "event", "ack", "error", "noop", "unknown"} {
		if got := PacketType(i).String(); got != want {
			t.Errorf("PacketType(%d) = %q, want %q", i, got, want)
		}
	}
}

func TestPayload(t *testing.T) {
	// One packet goes unframed; several are framed with UTF-16 lengths.
	if got := string(AppendPayload(nil, []byte("1::"))); got != "1::" {
		t.Fatalf("single = %q", got)
	}
	got := string(AppendPayload(nil, []byte("1::"), []byte("3:::abc")))
	if want := "\ufffd3\ufffd1::\ufffd7\ufffd3:::abc"; got != want {
		t.Fatalf("framed = %q, want %q", got, want)
	}
	// An emoji counts two code units, as in JavaScript.
	got = string(AppendPayload(nil, []byte("3:::😀"), []byte("3:::é")))
	if want := "\ufffd6\ufffd3:::😀\ufffd5\ufffd3:::é"; got != want {
		t.Fatalf("unicode framed = %q, want %q", got, want)
	}
	var packets []string
	err := DecodePayload([]byte(got), 0, func(p []byte) error { packets = append(packets, string(p)); return nil })
	if err != nil || len(packets) != 2 || packets[0] != "3:::😀" || packets[1] != "3:::é" {
		t.Fatalf("decoded %q, %v", packets, err)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want error
	}{
		{"\ufffd9\ufffd3:::x", 0, ErrBadFrame},           // length past the end
		{"\ufffdx\ufffd3:::x", 0, ErrBadFrame},           // not a number
		{"\ufffd\ufffd3:::x", 0, ErrBadFrame},            // empty length
		{"\ufffd5\ufffd3:::xjunk", 0, ErrBadFrame},       // junk between frames
		{"\ufffd12345678901\ufffd3:::x", 0, ErrBadFrame}, // absurd length
		{"\ufffd5\ufffd3:::😀", 0, ErrBadFrame},           // length splits a surrogate pair
		{"\ufffd5\ufffd3:::x\ufffd20\ufffd3:::y", 3, ErrTooLarge},
		{"3:::too long", 5, ErrTooLarge},
	}
	for _, tc := range tests {
		err := DecodePayload([]byte(tc.in), tc.max, func([]byte) error { return nil })
		if !errors.Is(err, tc.want) {
			t.Errorf("DecodePayload(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
	stop := errors.New("stop")
	if err := DecodePayload([]byte("\ufffd3\ufffd1::\ufffd3\ufffd2::"), 0, func([]byte) error { return stop }); err != stop {
		t.Fatalf("fn's error not returned: %v", err)
	}
}

func TestUTF16Len(t *testing.T) {
	for in, want := range map[string]int{"": 0, "abc": 3, "é": 1, "€": 1, "😀": 2, "a😀b": 4, "\xff\xfe": 2} {
		if got := UTF16Len([]byte(in)); got != want {
			t.Errorf("UTF16Len(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestEvents(t *testing.T) {
	name, args, err := ParseEvent([]byte(`{"name":"chat","args":["hi",1]}`))
	if err != nil || name != "chat" || string(args) != `["hi",1]` {
		t.Fatalf("ParseEvent = %q %s %v", name, args, err)
	}
	name, args, err = ParseEvent([]byte(`{"name":"noargs"}`))
	if err != nil || name != "noargs" || string(args) != "[]" {
		t.Fatalf("ParseEvent without args = %q %s %v", name, args, err)
	}
	for _, bad := range []string{``, `{}`, `{"name":1}`, `{"name":"x","args":{}}`, `{"name":"x","args":"s"}`, `[1]`, `{"name":"x"`} {
		if _, _, err := ParseEvent([]byte(bad)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("ParseEvent(%q) error = %v", bad, err)
		}
	}
	if got := string(AppendEvent(nil, "e", []byte("[]"))); got != `{"name":"e"}` {
		t.Errorf("AppendEvent no args = %s", got)
	}
	if got := string(AppendEvent(nil, `q"</`, []byte(`[1]`))); got != `{"name":"q\"\u003c/","args":[1]}` {
		t.Errorf("AppendEvent = %s", got)
	}
}

func TestAcksAndErrors(t *testing.T) {
	id, args, has, err := ParseAck([]byte(`3+["ok"]`))
	if err != nil || id != 3 || !has || string(args) != `["ok"]` {
		t.Fatalf("ParseAck = %d %s %v %v", id, args, has, err)
	}
	id, _, has, err = ParseAck([]byte("12"))
	if err != nil || id != 12 || has {
		t.Fatalf("ParseAck plain = %d %v %v", id, has, err)
	}
	for _, bad := range []string{"", "x", "+[]", "3+", "3+{}", "3+[", "-1"} {
		if _, _, _, err := ParseAck([]byte(bad)); !errors.Is(err, ErrBadAck) {
			t.Errorf("ParseAck(%q) = %v", bad, err)
		}
	}
	if got := string(AppendAck(nil, 7, []byte("[\"a\u2028b\u2029c€\"]"), true)); got != `7+["a\u2028b\u2029c€"]` {
		t.Errorf("AppendAck does not escape line terminators: %s", got)
	}
	if got := string(AppendEvent(nil, "e", []byte("[\"\u2028\"]"))); got != `{"name":"e","args":["\u2028"]}` {
		t.Errorf("AppendEvent does not escape line terminators: %s", got)
	}
	if got := string(AppendAck(nil, 7, []byte(`["r"]`), true)); got != `7+["r"]` {
		t.Errorf("AppendAck = %s", got)
	}
	if got := ErrorPacket("", ReasonClientNotHandshaken, AdviceReconnect).String(); got != "7:::1+0" {
		t.Errorf("error packet = %s", got)
	}
	if got := ErrorPacket("/priv", ReasonUnauthorized, -1).String(); got != "7::/priv:2" {
		t.Errorf("namespace error packet = %s", got)
	}
	r, a, err := ParseErrorData([]byte("1+0"))
	if r != 1 || a != 0 || err != nil {
		t.Errorf("ParseErrorData = %d %d %v", r, a, err)
	}
}

func TestHandshake(t *testing.T) {
	h := Handshake{SID: "abc", Heartbeat: 60 * time.Second, Close: 1500 * time.Millisecond, Transports: []string{"websocket", "xhr-polling"}}
	if got := h.String(); got != "abc:60:2:websocket,xhr-polling" {
		t.Fatalf("handshake = %q", got)
	}
	// Never an empty or zero timeout (reference issue #872).
	if got := (Handshake{SID: "s", Transports: []string{"websocket"}}).String(); got != "s:1:1:websocket" {
		t.Fatalf("zero timeouts = %q", got)
	}
	p, err := ParseHandshake("sid1:60:60:websocket,htmlfile")
	if err != nil || p.SID != "sid1" || p.Heartbeat != time.Minute || len(p.Transports) != 2 {
		t.Fatalf("ParseHandshake = %+v %v", p, err)
	}
	if _, err := ParseHandshake("nonsense"); err == nil {
		t.Fatal("ParseHandshake accepted nonsense")
	}
}

// Any string survives the jsonp and htmlfile wrappings and cannot break out
// of the script: no raw '<', U+2028 or U+2029 in the output.
func TestJSStringSafety(t *testing.T) {
	inputs := []string{"", "plain", "</script><script>alert(1)</script>", "\u2028\u2029", "quote\" back\\slash",
		"\x00\x1f\x7f", "😀", "\xff\xfeinvalid", "a/b", "&<>"}
	for _, in := range inputs {
		for name, enc := range map[string][]byte{
			"js":       AppendJSString(nil, []byte(in)),
			"htmlfile": bytes.TrimSuffix(bytes.TrimPrefix(AppendHTMLFileScript(nil, []byte(in)), []byte("<script>_(")), []byte(");</script>")),
		} {
			var got string
			if err := json.Unmarshal(enc, &got); err != nil {
				t.Errorf("%s(%q) = %s: not JSON: %v", name, in, enc, err)
				continue
			}
			if want := strings.ToValidUTF8(in, "\ufffd"); got != want && !(utf8.ValidString(in) == false && got == invalidAsReplacement(in)) {
				t.Errorf("%s(%q) round trip = %q", name, in, got)
			}
			if bytes.ContainsAny(enc, "<\u2028\u2029") {
				t.Errorf("%s(%q) = %s contains a raw <, U+2028 or U+2029", name, in, enc)
			}
		}
	}
	if got := string(AppendJSONP(nil, "3", []byte("1::"))); got != `io.j[3]("1::");` {
		t.Errorf("jsonp = %s", got)
	}
	if got := string(AppendJSONPError(nil, "0", "handshake unauthorized")); got != `io.j[0](new Error("handshake unauthorized"));` {
		t.Errorf("jsonp error = %s", got)
	}
	if got := string(AppendHTMLFileScript(nil, []byte("a/b"))); got != `<script>_("a\/b");</script>` {
		t.Errorf("htmlfile = %s", got)
	}
	h := HTMLFileHeader()
	if !bytes.HasPrefix(h, []byte("<html><body><script>var _ = function (msg) { parent.s._(msg, document); };</script>")) ||
		!bytes.HasSuffix(h, bytes.Repeat([]byte(" "), 173)) {
		t.Errorf("htmlfile header %q", h)
	}
}

// invalidAsReplacement maps each invalid byte to U+FFFD, as AppendJSString does.
func invalidAsReplacement(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

func TestJSONPBody(t *testing.T) {
	got, err := DecodeJSONPBody([]byte(`"5:::{\"name\":\"x\"}"`))
	if err != nil || string(got) != `5:::{"name":"x"}` {
		t.Fatalf("DecodeJSONPBody = %q %v", got, err)
	}
	for _, bad := range []string{``, `"unterminated`, `{"a":1}`, `12`} {
		if _, err := DecodeJSONPBody([]byte(bad)); !errors.Is(err, ErrBadJSONP) {
			t.Errorf("DecodeJSONPBody(%q) = %v", bad, err)
		}
	}
	for s, want := range map[string]bool{"0": true, "12": true, "": false, "1a": false, "-1": false, "12345678901": false} {
		if ValidJSONPIndex(s) != want {
			t.Errorf("ValidJSONPIndex(%q) != %v", s, want)
		}
	}
}

// The hot path does not allocate: decoding a default-namespace packet and
// walking a framed payload.
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
	buf := make([]byte, 0, 256)
	p := Packet{Type: Event, ID: 9, HasID: true, AckData: true, Data: pkt[9:]}
	if n := testing.AllocsPerRun(100, func() { buf = AppendPacket(buf[:0], p) }); n != 0 {
		t.Errorf("AppendPacket allocates %v times", n)
	}
}
