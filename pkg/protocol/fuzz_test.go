package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

var seeds = []string{
	"0::", "0::/chat", "1::", "1::/chat:?q=1", "2::", "3:::hello", "3:1+::hi", `4:::{"a":1}`,
	`5:::{"name":"e","args":[1]}`, `5:3+:/chat:{"name":"e"}`, `6:::3+["ok"]`, "7:::1+0", "8::",
	"\ufffd3\ufffd1::\ufffd7\ufffd3:::abc", "\ufffd6\ufffd3:::😀", "", ":", "5:99999999999999999999::", "\ufffd",
}

// Decode never panics, does not modify its input, and a decoded packet
// re-encodes to bytes that decode to the same packet.
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
		if err != nil {
			return
		}
		enc := Encode(p)
		q, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %q: %v", enc, err)
		}
		if q.Type != p.Type || q.ID != p.ID || q.HasID != p.HasID || q.AckData != p.AckData ||
			q.Endpoint != p.Endpoint || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("round trip %q -> %q: %+v != %+v", b, enc, p, q)
		}
	})
}

// DecodePayload never panics, is deterministic, and re-framing what it
// decodes gives a payload that decodes to the same packets.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		var first, second [][]byte
		err1 := DecodePayload(b, 0, func(p []byte) error { first = append(first, bytes.Clone(p)); return nil })
		err2 := DecodePayload(b, 0, func(p []byte) error { second = append(second, p); return nil })
		if !bytes.Equal(b, orig) {
			t.Fatal("DecodePayload modified its input")
		}
		if (err1 == nil) != (err2 == nil) || len(first) != len(second) {
			t.Fatal("DecodePayload is not deterministic")
		}
		if err1 != nil || len(first) < 2 {
			return
		}
		var again [][]byte
		if err := DecodePayload(AppendPayload(nil, first...), 0, func(p []byte) error { again = append(again, p); return nil }); err != nil {
			t.Fatalf("re-framed payload: %v", err)
		}
		if len(again) != len(first) {
			t.Fatalf("re-framed %d packets, had %d", len(again), len(first))
		}
		for i := range first {
			if !bytes.Equal(first[i], again[i]) {
				t.Fatalf("packet %d: %q != %q", i, first[i], again[i])
			}
		}
	})
}

// ParseEvent never panics; what it accepts re-encodes to an event it
// accepts with the same name.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`{"name":"e"}`, `{"name":"e","args":[1,"x"]}`, `{"name":1}`, `{`, `{"name":"\u2028"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		name, args, err := ParseEvent(b)
		if err != nil {
			return
		}
		n2, _, err := ParseEvent(AppendEvent(nil, name, args))
		if err != nil || n2 != name {
			t.Fatalf("re-encoded event of %q: %q %v", b, n2, err)
		}
	})
}

// AppendJSString always produces valid JSON that decodes to the input (with
// invalid UTF-8 as U+FFFD) and contains no raw '<', U+2028 or U+2029.
func FuzzJSString(f *testing.F) {
	for _, s := range []string{"", "</script>", "\u2028", "\xff", "😀", `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		enc := AppendJSString(nil, b)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q -> %s: %v", b, enc, err)
		}
		if got != invalidAsReplacement(string(b)) {
			t.Fatalf("%q -> %s -> %q", b, enc, got)
		}
		if bytes.ContainsAny(enc, "<\u2028\u2029") {
			t.Fatalf("%q -> %s has a raw <, U+2028 or U+2029", b, enc)
		}
	})
}
