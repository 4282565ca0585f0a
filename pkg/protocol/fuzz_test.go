package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// seeds holds every packet type, with and without id, '+', endpoint and
// data, the conformance payloads, and malformed inputs.
var seeds = []string{
	"0::", "0::/chat", "1::", "1::/chat", "1::/chat:?token=x", "2::", "3:::hello", "3:1::hi", "3:1+::hi",
	"3::/chat:a:b", `4:::{"a":1}`, `4:2+:/j:[1]`, `5:::{"name":"e","args":[1]}`, `5:3+:/chat:{"name":"e"}`,
	`6:::3`, `6:::3+["ok"]`, `6::/chat:3+["ok"]`, "7:::1+0", "7::/priv:2", "8::", "3:::😀", "3:::\u2028",
	"\ufffd3\ufffd1::\ufffd7\ufffd3:::abc", "\ufffd6\ufffd3:::😀", "\ufffd6\ufffd3:::😀\ufffd3\ufffd2::",
	"", ":", "::", "9::", "55::", "5:+::", "5:1++::", "5:99999999999999999999::", "\ufffd", "\ufffd\ufffd",
	"\ufffd5\ufffd3:::😀", "\ufffd0\ufffd", "\xff:\xfe:", "3:::\xff",
}

func samePackets(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Decode never panics, does not modify its input, agrees with
// DecodeString, and what it decodes re-encodes to bytes that decode to the
// same packet and encode to the same bytes again.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		p, err := Decode(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("Decode modified its input")
		}
		if ps, errs := DecodeString(string(b)); (err == nil) != (errs == nil) || (err == nil && !samePacket(p, ps)) {
			t.Fatalf("Decode and DecodeString disagree on %q", b)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadType) && !errors.Is(err, ErrBadID) {
				t.Fatalf("Decode(%q): unexpected error %v", b, err)
			}
			return
		}
		if p.Type > Noop || bytes.IndexByte([]byte(p.Endpoint), ':') >= 0 || (p.AckData && !p.HasID) {
			t.Fatalf("Decode(%q) = %+v", b, p)
		}
		enc := Encode(p)
		q, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", enc, b, err)
		}
		if q.Type != p.Type || q.ID != p.ID || q.HasID != p.HasID || q.AckData != p.AckData ||
			q.Endpoint != p.Endpoint || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("round trip %q -> %q: %+v != %+v", b, enc, p, q)
		}
		if enc2 := Encode(q); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %q -> %q", enc, enc2)
		}
	})
}

// DecodePayload never panics, does not modify its input, gives the same
// packets (and error) when fed the same input twice, respects maxPacket,
// and re-framing what it decodes gives a payload that decodes to the same
// packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), 0)
		f.Add([]byte(s), 4)
	}
	f.Fuzz(func(t *testing.T, b []byte, maxPacket int) {
		orig := bytes.Clone(b)
		collect := func() ([][]byte, error) {
			var got [][]byte
			err := DecodePayload(b, maxPacket, func(p []byte) error {
				if maxPacket > 0 && len(p) > maxPacket {
					t.Fatalf("packet of %d bytes passed a limit of %d", len(p), maxPacket)
				}
				got = append(got, bytes.Clone(p))
				return nil
			})
			return got, err
		}
		first, err1 := collect()
		second, err2 := collect()
		if !bytes.Equal(b, orig) {
			t.Fatal("DecodePayload modified its input")
		}
		if (err1 == nil) != (err2 == nil) || !samePackets(first, second) {
			t.Fatalf("DecodePayload is not deterministic on %q", b)
		}
		if err1 != nil {
			if !errors.Is(err1, ErrBadFrame) && !errors.Is(err1, ErrTooLarge) {
				t.Fatalf("DecodePayload(%q): unexpected error %v", b, err1)
			}
			return
		}
		// A callback error stops the walk at once and comes back as is.
		stop := errors.New("stop")
		calls := 0
		if err := DecodePayload(b, maxPacket, func([]byte) error { calls++; return stop }); err != stop || calls != 1 {
			t.Fatalf("fn's error: %v after %d calls", err, calls)
		}
		if len(first) < 2 {
			return
		}
		var again [][]byte
		err := DecodePayload(AppendPayload(nil, first...), maxPacket, func(p []byte) error { again = append(again, p); return nil })
		if err != nil || !samePackets(first, again) {
			t.Fatalf("re-framed payload of %q: %q, %v", first, again, err)
		}
	})
}

// ParseEvent never panics and does not modify its input; it accepts exactly
// what encoding/json decodes as an object with a string "name" and an array
// or null "args" (keys matched exactly), with the same name and args; args
// aliases the input; and what it accepts re-encodes to an equal event.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`{"name":"e"}`, `{"name":"e","args":[1,"x"]}`, `{"name":1}`, `{`, `{"name":"\u2028"}`,
		`{"args":[{"a":"]"}],"name":"x"}`, `{"n\u0061me":"x","args":null}`, `{"NAME":"x"}`, `{"name":"a","name":"b"}`,
		` { "name" : "x" , "args" : [ ] } `, "{\"name\":\"\xff\"}", `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, args, err := ParseEvent(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseEvent modified its input")
		}
		// The oracle: encoding/json into a map matches keys exactly, and
		// the last of repeated keys wins.
		var m map[string]json.RawMessage
		var wantName string
		wantOK := json.Unmarshal(b, &m) == nil && m != nil && m["name"] != nil && m["name"][0] == '"' &&
			json.Unmarshal(m["name"], &wantName) == nil && (m["args"] == nil || m["args"][0] == '[' || string(m["args"]) == "null")
		if (err == nil) != wantOK {
			t.Fatalf("ParseEvent(%q) error %v, oracle accepts: %v", b, err, wantOK)
		}
		if err != nil {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("ParseEvent(%q): unexpected error %v", b, err)
			}
			return
		}
		if name != wantName {
			t.Fatalf("ParseEvent(%q) name %q, oracle %q", b, name, wantName)
		}
		if a := m["args"]; a != nil && string(a) != "null" {
			if !bytes.Equal(args, a) || !aliases(b, args) {
				t.Fatalf("ParseEvent(%q) args %q, oracle %q", b, args, a)
			}
		} else if string(args) != "[]" {
			t.Fatalf("ParseEvent(%q) args %q, want []", b, args)
		}
		n2, a2, err := ParseEvent(AppendEvent(nil, name, args))
		if err != nil || n2 != name {
			t.Fatalf("re-encoded event of %q: %q %v", b, n2, err)
		}
		var v1, v2 any
		if json.Unmarshal(args, &v1) != nil || json.Unmarshal(a2, &v2) != nil || !jsonEqual(v1, v2) {
			t.Fatalf("re-encoded args of %q: %s != %s", b, args, a2)
		}
	})
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// AppendJSString and the jsonp and htmlfile wrappings always produce valid
// JSON that decodes to the input (with invalid UTF-8 as U+FFFD) and contain
// no raw '<', '>', '&', U+2028, U+2029 or control character.
func FuzzJSString(f *testing.F) {
	for _, s := range []string{"", "</script>", "\u2028", "\u2029", "\xff", "😀", `"\`, "\xe2\x80", "a/b", "<!--", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		checkJSSafe(t, "AppendJSString", b, AppendJSString(nil, b), false)
		checkJSSafe(t, "AppendJSONP", b, jsLiteral(t, AppendJSONP(nil, "0", b), "io.j[0](", ");"), false)
		checkJSSafe(t, "AppendHTMLFileScript", b, jsLiteral(t, AppendHTMLFileScript(nil, b), "<script>_(", ");</script>"), true)
		if !bytes.Equal(b, orig) {
			t.Fatal("input modified")
		}
		got, err := DecodeJSONPBody(AppendJSString(nil, b))
		if err != nil || string(got) != invalidAsReplacement(string(b)) {
			t.Fatalf("DecodeJSONPBody(AppendJSString(%q)) = %q %v", b, got, err)
		}
	})
}
