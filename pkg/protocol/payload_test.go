package protocol

import (
	"errors"
	"strings"
	"testing"
)

func decodeAll(t *testing.T, payload string, maxPacket int) ([]string, error) {
	t.Helper()
	var packets []string
	err := DecodePayload([]byte(payload), maxPacket, func(p []byte) error {
		packets = append(packets, string(p))
		return nil
	})
	return packets, err
}

func TestPayloadFraming(t *testing.T) {
	tests := []struct {
		packets []string
		want    string
	}{
		{[]string{"1::"}, "1::"}, // one packet goes unframed
		{[]string{"1::", "3:::abc"}, "\ufffd3\ufffd1::\ufffd7\ufffd3:::abc"},
		{[]string{"3:::😀", "3:::é"}, "\ufffd6\ufffd3:::😀\ufffd5\ufffd3:::é"}, // an emoji counts 2, é counts 1
		{[]string{"3:::€\u2028", "2::"}, "\ufffd6\ufffd3:::€\u2028\ufffd3\ufffd2::"},
		{[]string{"", "8::"}, "\ufffd0\ufffd\ufffd3\ufffd8::"},
		{[]string{"3:::" + strings.Repeat("a", 1234), "2::"}, "\ufffd1238\ufffd3:::" + strings.Repeat("a", 1234) + "\ufffd3\ufffd2::"},
		{[]string{"3:::\ufffd\ufffd", "2::"}, "\ufffd6\ufffd3:::\ufffd\ufffd\ufffd3\ufffd2::"}, // a packet may hold U+FFFD
	}
	for _, tc := range tests {
		var in [][]byte
		for _, p := range tc.packets {
			in = append(in, []byte(p))
		}
		if got := string(AppendPayload(nil, in...)); got != tc.want {
			t.Errorf("AppendPayload(%q) = %q, want %q", tc.packets, got, tc.want)
		}
		got, err := decodeAll(t, tc.want, 0)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.packets, "|") || len(got) != len(tc.packets) {
			t.Errorf("DecodePayload(%q) = %q, %v; want %q", tc.want, got, err, tc.packets)
		}
	}
	if got := AppendPayload([]byte("x")); string(got) != "x" {
		t.Errorf("no packets appended %q", got)
	}
	var frames []byte
	frames = AppendFrame(frames, []byte("1::"))
	frames = AppendFrame(frames, []byte("3:::abc"))
	if string(frames) != "\ufffd3\ufffd1::\ufffd7\ufffd3:::abc" {
		t.Errorf("AppendFrame = %q", frames)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want error
	}{
		{"\ufffd9\ufffd3:::x", 0, ErrBadFrame},                    // length past the end
		{"\ufffdx\ufffd3:::x", 0, ErrBadFrame},                    // not a number
		{"\ufffd-1\ufffd3:::x", 0, ErrBadFrame},                   // not a number
		{"\ufffd+5\ufffd3:::x", 0, ErrBadFrame},                   // not a number
		{"\ufffd\ufffd3:::x", 0, ErrBadFrame},                     // empty length
		{"\ufffd5", 0, ErrBadFrame},                               // no closing mark
		{"\ufffd", 0, ErrBadFrame},                                // no length at all
		{"\ufffd5\ufffd3:::xjunk", 0, ErrBadFrame},                // junk between frames
		{"\ufffd5\ufffd3:::x\ufffd", 0, ErrBadFrame},              // a truncated frame
		{"\ufffd12345678901\ufffd3:::x", 0, ErrBadFrame},          // absurd length
		{"\ufffd5\ufffd3:::😀", 0, ErrBadFrame},                    // length splits a surrogate pair
		{"\ufffd5\ufffd3:::x\ufffd20\ufffd3:::y", 3, ErrTooLarge}, // a frame over the limit
		{"\ufffd9999999999\ufffd3:::x", 100, ErrTooLarge},         // refused before scanning
		{"3:::too long", 5, ErrTooLarge},                          // an unframed packet over the limit
	}
	for _, tc := range tests {
		_, err := decodeAll(t, tc.in, tc.max)
		if !errors.Is(err, tc.want) {
			t.Errorf("DecodePayload(%q, %d) = %v, want %v", tc.in, tc.max, err, tc.want)
		}
	}
	// Packets before a bad frame have been delivered.
	got, err := decodeAll(t, "\ufffd3\ufffd1::\ufffdx\ufffd", 0)
	if !errors.Is(err, ErrBadFrame) || len(got) != 1 || got[0] != "1::" {
		t.Errorf("partial payload = %q, %v", got, err)
	}
	// The limit is in bytes and inclusive.
	if got, err := decodeAll(t, "\ufffd5\ufffd3:::é\ufffd3\ufffd2::", 6); err != nil || len(got) != 2 {
		t.Errorf("6-byte packet under a 6-byte limit: %q, %v", got, err)
	}
	if _, err := decodeAll(t, "\ufffd5\ufffd3:::é\ufffd3\ufffd2::", 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("6-byte packet under a 5-byte limit: %v", err)
	}
	// fn's first error is returned as is, and stops the walk.
	stop := errors.New("stop")
	calls := 0
	err = DecodePayload([]byte("\ufffd3\ufffd1::\ufffd3\ufffd2::"), 0, func([]byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls", err, calls)
	}
	// An unframed payload is one packet, even if empty or invalid.
	for _, in := range []string{"", "garbage", "3:::a\ufffd5\ufffd"} {
		if got, err := decodeAll(t, in, 0); err != nil || len(got) != 1 || got[0] != in {
			t.Errorf("DecodePayload(%q) = %q, %v", in, got, err)
		}
	}
}

func TestUTF16Len(t *testing.T) {
	tests := map[string]int{
		"":             0,
		"abc":          3,
		"é":            1,
		"€":            1,
		"\ufffd":       1,
		"\uffff":       1,
		"😀":            2,
		"\U00010000":   2,
		"a😀b":          4,
		"\xff\xfe":     2, // each maximal invalid subsequence counts 1, as its U+FFFD
		"\xed\xa0\x80": 3, // an encoded surrogate is 3 of them
		"\xf0\x9f\x98": 1, // a truncated 4-byte sequence is one (utf8_test.go has more)
		"3:::😀":        6, // the conformance example
	}
	for in, want := range tests {
		if got := UTF16Len([]byte(in)); got != want {
			t.Errorf("UTF16Len(%q) = %d, want %d", in, got, want)
		}
	}
}
