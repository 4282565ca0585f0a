package chat

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		ok   bool
	}{
		{"ann", MaxNick, true},
		{"Ann Lee", MaxNick, true},
		{"😀🚀", MaxNick, true},
		{"👩‍💻", MaxNick, true}, // a zero-width joiner is no control character
		{strings.Repeat("é", MaxNick), MaxNick, true},
		{strings.Repeat("é", MaxNick+1), MaxNick, false},
		{"", MaxNick, false},
		{"a\nb", MaxNick, false},
		{"a\tb", MaxNick, false},
		{"a\u2028b", MaxNick, false},
		{"a\u0000b", MaxNick, false},
		{"lobby", MaxRoom, true},
		{strings.Repeat("r", MaxRoom), MaxRoom, true},
		{strings.Repeat("r", MaxRoom+1), MaxRoom, false},
	} {
		msg := checkName(tc.name, tc.max, "A name")
		if (msg == "") != tc.ok {
			t.Errorf("checkName(%q, %d) = %q, want ok=%v", tc.name, tc.max, msg, tc.ok)
		}
	}
}

func TestFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"bob", "Bob", true},
		{"BOB", "bob", true},
		{"Élise", "élise", true},
		{"bob", "bob2", false},
		{"bob", "robert", false},
	} {
		if got := fold(tc.a) == fold(tc.b); got != tc.same {
			t.Errorf("fold(%q) == fold(%q) is %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
