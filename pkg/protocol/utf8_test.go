package protocol

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// utf8Cases are inputs with what Node 20's Buffer.toString('utf8') (the
// reference server's decoder) gives for them, written back as UTF-8, and
// its String.length; the want values were taken by running Node and are
// also checked against a live Node by test/integration's
// TestRepairMatchesNode.
var utf8Cases = []struct {
	name, in, want string
	units          int
}{
	{"empty", "", "", 0},
	{"ascii", "abc", "abc", 3},
	{"valid multi-byte", "é€😀", "é€😀", 4},
	{"valid U+FFFD", "\ufffd", "\ufffd", 1},
	{"largest code point", "\xf4\x8f\xbf\xbf", "\U0010FFFF", 2},
	{"lone continuation", "\x80", "\ufffd", 1},
	{"two continuations", "\x80\xbf", "\ufffd\ufffd", 2},
	{"continuation inside ascii", "a\x80b", "a\ufffdb", 3},
	{"overlong 2-byte", "\xc0\x80", "\ufffd\ufffd", 2},
	{"overlong 2-byte C1", "\xc1\xbf", "\ufffd\ufffd", 2},
	{"overlong 3-byte", "\xe0\x80\x80", "\ufffd\ufffd\ufffd", 3},
	{"overlong 3-byte top", "\xe0\x9f\xbf", "\ufffd\ufffd\ufffd", 3},
	{"overlong 4-byte", "\xf0\x80\x80\x80", "\ufffd\ufffd\ufffd\ufffd", 4},
	{"surrogate ED A0 80", "\xed\xa0\x80", "\ufffd\ufffd\ufffd", 3},
	{"surrogate ED BF BF", "\xed\xbf\xbf", "\ufffd\ufffd\ufffd", 3},
	{"surrogate pair (CESU-8)", "\xed\xa0\xbd\xed\xb8\x80", "\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd", 6},
	{"truncated 2-byte at end", "\xc3", "\ufffd", 1},
	{"truncated 3-byte at end", "\xe2\x80", "\ufffd", 1},
	{"truncated 4-byte at end", "\xf0\x9f\x98", "\ufffd", 1},
	{"truncated after ascii", "x\xf0\x9f", "x\ufffd", 2},
	{"truncated before ascii", "\xe2\x80A", "\ufffdA", 2},
	{"truncated before a valid character", "\xe1\x80\xe2\x82\xac", "\ufffd€", 2},
	{"lead before non-continuation", "\xc3(", "\ufffd(", 2},
	{"5-byte lead", "\xf8\x88\x80\x80\x80", "\ufffd\ufffd\ufffd\ufffd\ufffd", 5},
	{"6-byte lead", "\xfc\x84\x80\x80\x80\x80", "\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd", 6},
	{"F5 lead", "\xf5\x80\x80\x80", "\ufffd\ufffd\ufffd\ufffd", 4},
	{"F7 lead", "\xf7\xbf\xbf\xbf", "\ufffd\ufffd\ufffd\ufffd", 4},
	{"FE", "\xfe", "\ufffd", 1},
	{"FF", "\xff", "\ufffd", 1},
	{"past U+10FFFF", "\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd", 4},
	{"issue 11 input", "\xff\xfe\xc3\x28\xe2\x80", "\ufffd\ufffd\ufffd(\ufffd", 5},
	{"mixed truncations", "\xf1\x80\x80\xe1\x80\xc2A", "\ufffd\ufffd\ufffdA", 4},
	{"in a packet", `5:1+::{"name":"echo","args":["` + "\xff\xfe\xc3\x28\xe2\x80" + `"]}`,
		`5:1+::{"name":"echo","args":["` + "\ufffd\ufffd\ufffd(\ufffd" + `"]}`, 38},
}

func TestRepairUTF8(t *testing.T) {
	for _, tc := range utf8Cases {
		in := []byte(tc.in)
		got, repaired := RepairUTF8(in)
		if string(got) != tc.want || repaired != (tc.in != tc.want) {
			t.Errorf("%s: RepairUTF8(%q) = %q, %v; want %q", tc.name, tc.in, got, repaired, tc.want)
		}
		if string(in) != tc.in {
			t.Errorf("%s: RepairUTF8 modified its input", tc.name)
		}
		if s, repaired := RepairUTF8String(tc.in); s != tc.want || repaired != (tc.in != tc.want) {
			t.Errorf("%s: RepairUTF8String(%q) = %q, %v; want %q", tc.name, tc.in, s, repaired, tc.want)
		}
		if got := AppendRepairedUTF8([]byte("x"), in); string(got) != "x"+tc.want {
			t.Errorf("%s: AppendRepairedUTF8 = %q, want %q", tc.name, got, "x"+tc.want)
		}
		if got := whatwgDecode(in); got != tc.want {
			t.Errorf("%s: the test's own WHATWG decoder gives %q, want %q", tc.name, got, tc.want)
		}
		// The client counts lengths on the decoded string: UTF16Len of the
		// input as is agrees with it.
		if n := UTF16Len(in); n != tc.units {
			t.Errorf("%s: UTF16Len(%q) = %d, want %d", tc.name, tc.in, n, tc.units)
		}
		if n := UTF16Len([]byte(tc.want)); n != tc.units {
			t.Errorf("%s: UTF16Len(%q) = %d, want %d", tc.name, tc.want, n, tc.units)
		}
	}
}

// Valid input comes back as the same slice, without allocating.
func TestRepairUTF8ValidIsFree(t *testing.T) {
	in := []byte(`5:::{"name":"chat","args":["é€😀 and plain text"]}`)
	s := string(in)
	allocs := testing.AllocsPerRun(100, func() {
		out, repaired := RepairUTF8(in)
		if repaired || &out[0] != &in[0] || len(out) != len(in) {
			t.Fatal("valid input was copied")
		}
		if out, repaired := RepairUTF8String(s); repaired || out != s {
			t.Fatal("valid string changed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for valid input", allocs)
	}
}

// whatwgDecode is the WHATWG Encoding Standard's UTF-8 decoder (§4.1.1,
// "UTF-8 decoder"), transcribed step by step as an oracle independent of
// invalidLen: on a byte out of the expected range it emits U+FFFD and
// processes that byte again; at the end of input an unfinished sequence
// is one U+FFFD.
func whatwgDecode(b []byte) string {
	var out []rune
	var cp rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(b); {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7F:
				out = append(out, rune(c))
			case c >= 0xC2 && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				}
				if c == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0xF)
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				}
				if c == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x7)
			default:
				out = append(out, utf8.RuneError)
			}
			i++
			continue
		}
		if c < lower || c > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out = append(out, utf8.RuneError)
			continue // prepend c to the stream: process it again
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		i++
		if seen == needed {
			out = append(out, cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		out = append(out, utf8.RuneError)
	}
	return string(out)
}

// RepairUTF8 always gives valid UTF-8, leaves valid input unchanged (the
// same slice), agrees with the WHATWG decoder transcribed above, with
// RepairUTF8String, AppendRepairedUTF8 and UTF16Len, never modifies its
// input and grows it at most threefold.
func FuzzRepairUTF8(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		got, repaired := RepairUTF8(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("RepairUTF8 modified its input")
		}
		if !utf8.Valid(got) {
			t.Fatalf("RepairUTF8(%q) = %q is not valid UTF-8", b, got)
		}
		if repaired == utf8.Valid(b) {
			t.Fatalf("RepairUTF8(%q) says repaired=%v", b, repaired)
		}
		if !repaired && (len(b) > 0 && &got[0] != &b[0] || len(got) != len(b)) {
			t.Fatalf("valid input %q was copied or changed: %q", b, got)
		}
		if len(got) > 3*len(b) {
			t.Fatalf("RepairUTF8 grew %d bytes to %d", len(b), len(got))
		}
		if want := whatwgDecode(b); string(got) != want {
			t.Fatalf("RepairUTF8(%q) = %q, WHATWG decoder %q", b, got, want)
		}
		if s, r := RepairUTF8String(string(b)); s != string(got) || r != repaired {
			t.Fatalf("RepairUTF8String(%q) = %q, %v; RepairUTF8 %q", b, s, r, got)
		}
		if a := AppendRepairedUTF8([]byte("p"), b); string(a) != "p"+string(got) {
			t.Fatalf("AppendRepairedUTF8(%q) = %q", b, a)
		}
		if again, r := RepairUTF8(got); r || !bytes.Equal(again, got) {
			t.Fatalf("repairing %q again changed it", got)
		}
		if UTF16Len(b) != UTF16Len(got) {
			t.Fatalf("UTF16Len(%q) = %d, of its repair %d", b, UTF16Len(b), UTF16Len(got))
		}
	})
}

// Frame lengths count a maximal invalid subsequence as one unit, as the
// client's decoder sees it, so framing a packet and framing its repair give
// the same lengths, and a payload framed by those lengths decodes.
func TestPayloadLengthsOfInvalidUTF8(t *testing.T) {
	bad := []byte("3:::\xff\xfe\xc3\x28\xe2\x80")
	fixed, _ := RepairUTF8(bad)
	want := "\ufffd9\ufffd3:::\xff\xfe\xc3\x28\xe2\x80\ufffd3\ufffd2::"
	if got := string(AppendPayload(nil, bad, []byte("2::"))); got != want {
		t.Fatalf("AppendPayload = %q, want %q", got, want)
	}
	if got := string(AppendPayload(nil, fixed, []byte("2::"))); got != "\ufffd9\ufffd3:::\ufffd\ufffd\ufffd(\ufffd\ufffd3\ufffd2::" {
		t.Fatalf("AppendPayload of the repair = %q", got)
	}
	for _, payload := range []string{want, "\ufffd5\ufffd3:::\xe2\x80\ufffd3\ufffd2::", "\ufffd5\ufffd3:::\xf0\x9f\x98\ufffd3\ufffd2::"} {
		got, err := decodeAll(t, payload, 0)
		if err != nil || len(got) != 2 || got[1] != "2::" {
			t.Errorf("DecodePayload(%q) = %q, %v", payload, got, err)
		}
	}
	// A length that ends inside a maximal subpart splits a character.
	if _, err := decodeAll(t, "\ufffd4\ufffd3:::\xe2\x80\ufffd3\ufffd2::", 0); err == nil {
		t.Error("a length ending inside a truncated sequence was accepted")
	}
}
