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

func TestHandshake(t *testing.T) {
	tests := []struct {
		h    Handshake
		want string
	}{
		{Handshake{SID: "abc", Heartbeat: 60 * time.Second, Close: 60 * time.Second,
			Transports: []string{"websocket", "xhr-polling", "jsonp-polling"}}, "abc:60:60:websocket,xhr-polling,jsonp-polling"},
		{Handshake{SID: "abc", Heartbeat: 60 * time.Second, Close: 1500 * time.Millisecond,
			Transports: []string{"websocket"}}, "abc:60:2:websocket"}, // rounded up
		{Handshake{SID: "s", Transports: []string{"websocket"}}, "s:1:1:websocket"}, // never empty or 0 (#872)
		{Handshake{SID: "s", Heartbeat: time.Nanosecond, Close: -time.Second}, "s:1:1:"},
		{Handshake{SID: "s", Heartbeat: 25 * time.Second, Close: time.Hour, Transports: []string{"a", "b"}}, "s:25:3600:a,b"},
	}
	for _, tc := range tests {
		if got := tc.h.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.h, got, tc.want)
		}
		if got := string(AppendHandshake([]byte("x"), tc.h)); got != "x"+tc.want {
			t.Errorf("AppendHandshake = %q", got)
		}
	}
	p, err := ParseHandshake("4d4f185e96a7b:60:25:websocket,htmlfile,xhr-polling,jsonp-polling")
	if err != nil || p.SID != "4d4f185e96a7b" || p.Heartbeat != time.Minute || p.Close != 25*time.Second ||
		strings.Join(p.Transports, " ") != "websocket htmlfile xhr-polling jsonp-polling" {
		t.Fatalf("ParseHandshake = %+v %v", p, err)
	}
	// The reference with heartbeats disabled sends an empty field.
	p, err = ParseHandshake("sid::60:")
	if err != nil || p.Heartbeat != 0 || p.Close != time.Minute || p.Transports != nil {
		t.Fatalf("ParseHandshake with empty fields = %+v %v", p, err)
	}
	for _, bad := range []string{"", "nonsense", "a:1:1", ":1:1:websocket", "s:x:1:websocket", "s:1:-1:websocket", "s:1:1e3:ws"} {
		if _, err := ParseHandshake(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHandshake(%q) = %v", bad, err)
		}
	}
}

// jsLiteral extracts the string literal from an output of the form
// prefix + literal + suffix.
func jsLiteral(t *testing.T, out []byte, prefix, suffix string) []byte {
	t.Helper()
	if !bytes.HasPrefix(out, []byte(prefix)) || !bytes.HasSuffix(out, []byte(suffix)) {
		t.Fatalf("%q does not look like %s…%s", out, prefix, suffix)
	}
	return out[len(prefix) : len(out)-len(suffix)]
}

// checkJSSafe asserts that lit is a JSON string literal holding s (invalid
// UTF-8 as U+FFFD) with no raw '<', '>', '&', U+2028, U+2029 or control
// character, and, for htmlfile, no raw '/'.
func checkJSSafe(t *testing.T, what string, s, lit []byte, slash bool) {
	t.Helper()
	var got string
	if err := json.Unmarshal(lit, &got); err != nil {
		t.Fatalf("%s(%q) = %s: not JSON: %v", what, s, lit, err)
	}
	if want := invalidAsReplacement(string(s)); got != want {
		t.Fatalf("%s(%q) = %s decodes to %q, want %q", what, s, lit, got, want)
	}
	if !utf8.Valid(lit) {
		t.Fatalf("%s(%q) = %q is not valid UTF-8", what, s, lit)
	}
	inner := lit[1 : len(lit)-1]
	if bytes.ContainsAny(inner, "<>&\u2028\u2029\x7f") || bytes.ContainsFunc(inner, func(r rune) bool { return r < 0x20 }) {
		t.Fatalf("%s(%q) = %s holds a raw unsafe character", what, s, lit)
	}
	unescaped := bytes.ReplaceAll(bytes.ReplaceAll(inner, []byte(`\\`), nil), []byte(`\/`), nil)
	if slash && bytes.Contains(unescaped, []byte("/")) {
		t.Fatalf("%s(%q) = %s holds a raw '/'", what, s, lit)
	}
}

// invalidAsReplacement maps each maximal invalid subsequence to U+FFFD, as
// AppendJSString does, with the WHATWG decoder of utf8_test.go
// (strings.ToValidUTF8 would merge runs of them, ranging over the string
// would give one per byte).
func invalidAsReplacement(s string) string { return whatwgDecode([]byte(s)) }

// Any string survives the jsonp and htmlfile wrappings and cannot break out
// of the script.
func TestJSStringSafety(t *testing.T) {
	inputs := []string{"", "plain", "</script><script>alert(1)</script>", "<!--", "\u2028\u2029", "a\u2028b\u2029c",
		"quote\" back\\slash", "\x00\x01\x1f\x7f\b\f\n\r\t", "😀", "\xff\xfeinvalid", "\xe2\x80", "\xed\xa0\x80",
		"a/b", "&<>", "\ufffd", "\"});alert(1);//", `\u2028`, "é€😀" + strings.Repeat("x", 100)}
	for _, in := range inputs {
		s := []byte(in)
		orig := bytes.Clone(s)
		checkJSSafe(t, "AppendJSString", s, AppendJSString(nil, s), false)
		checkJSSafe(t, "AppendJSONP", s, jsLiteral(t, AppendJSONP(nil, "12", s), "io.j[12](", ");"), false)
		checkJSSafe(t, "AppendHTMLFileScript", s, jsLiteral(t, AppendHTMLFileScript(nil, s), "<script>_(", ");</script>"), true)
		checkJSSafe(t, "AppendJSONPError", s, jsLiteral(t, AppendJSONPError(nil, "0", in), `io.j[0](new Error(`, "));"), false)
		if !bytes.Equal(s, orig) {
			t.Fatalf("input %q modified", orig)
		}
	}
	exact := map[string]string{
		"":                   `""`,
		"</script>":          `"\u003c/script\u003e"`,
		"a&b":                `"a\u0026b"`,
		"\u2028\u2029":       `"\u2028\u2029"`,
		"\"\\\n\r\t\x00\x7f": `"\"\\\n\r\t\u0000\u007f"`,
		"\xff":               `"\ufffd"`,
		"\xe2\x80\xff":       `"\ufffd\ufffd"`, // a truncated sequence is one U+FFFD
		"é😀/":                `"é😀/"`,
	}
	for in, want := range exact {
		if got := string(AppendJSString(nil, []byte(in))); got != want {
			t.Errorf("AppendJSString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestJSONPAndHTMLFile(t *testing.T) {
	tests := []struct{ got, want string }{
		{string(AppendJSONP(nil, "0", []byte("1::"))), `io.j[0]("1::");`},
		{string(AppendJSONP(nil, "3", []byte(`5:::{"name":"x"}`))), `io.j[3]("5:::{\"name\":\"x\"}");`},
		{string(AppendJSONP(nil, "0", []byte("7:::1+0"))), `io.j[0]("7:::1+0");`},
		{string(AppendJSONP(nil, "0", []byte("8::"))), `io.j[0]("8::");`},
		{string(AppendJSONPError(nil, "0", "handshake unauthorized")), `io.j[0](new Error("handshake unauthorized"));`},
		{string(AppendJSONPError(nil, "7", "handshake bad origin")), `io.j[7](new Error("handshake bad origin"));`},
		{string(AppendHTMLFileScript(nil, []byte("a/b"))), `<script>_("a\/b");</script>`},
		{string(AppendHTMLFileScript(nil, []byte("3:::</script>"))), `<script>_("3:::\u003c\/script\u003e");</script>`},
		{string(AppendHTMLFileScript(nil, []byte("1::"))), `<script>_("1::");</script>`},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	h := HTMLFileHeader()
	const script = "<html><body><script>var _ = function (msg) { parent.s._(msg, document); };</script>"
	if string(h) != script+strings.Repeat(" ", 173) {
		t.Errorf("htmlfile header %q", h)
	}
	// Appending to the shared header copies it.
	_ = append(h, 'x')
	if h2 := HTMLFileHeader(); len(h2) != len(script)+173 || cap(h2) != len(h2) {
		t.Errorf("htmlfile header changed: %q", h2)
	}
}

func TestDecodeJSONPBody(t *testing.T) {
	tests := map[string]string{
		`"5:::{\"name\":\"x\"}"`:                 `5:::{"name":"x"}`,
		`""`:                                     ``,
		` "1::" `:                                `1::`,
		`"\ufffd3\ufffd1::\ufffd7\ufffd3:::abc"`: "\ufffd3\ufffd1::\ufffd7\ufffd3:::abc",
		`"\ud83d\ude00 \u2028 \/ \n"`:            "😀 \u2028 / \n",
		`"\ud800"`:                               "\ufffd",
		"\"raw \xff\"":                           "raw \ufffd",
		"\"\xff\xfe\xc3(\xe2\x80\"":              "\ufffd\ufffd\ufffd(\ufffd", // as Node decodes the field
	}
	for in, want := range tests {
		got, err := DecodeJSONPBody([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("DecodeJSONPBody(%s) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{``, ` `, `"unterminated`, `{"a":1}`, `12`, `null`, `"a" "b"`, `'x'`, `"\x"`, "\"a\nb\""} {
		if _, err := DecodeJSONPBody([]byte(bad)); !errors.Is(err, ErrBadJSONP) {
			t.Errorf("DecodeJSONPBody(%q) = %v", bad, err)
		}
	}
	// What AppendJSString writes, DecodeJSONPBody reads back.
	for _, s := range []string{"3:::</script>\u2028", "\ufffd6\ufffd3:::😀\ufffd3\ufffd2::"} {
		got, err := DecodeJSONPBody(AppendJSString(nil, []byte(s)))
		if err != nil || string(got) != s {
			t.Errorf("round trip of %q = %q %v", s, got, err)
		}
	}
}

func TestValidJSONPIndex(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "12": true, "0123456789": true, "": false, "1a": false, "-1": false,
		"+1": false, " 1": false, "1 ": false, "12345678901": false, "1]);alert(1);//": false, "١": false} {
		if ValidJSONPIndex(s) != want {
			t.Errorf("ValidJSONPIndex(%q) != %v", s, want)
		}
	}
}
