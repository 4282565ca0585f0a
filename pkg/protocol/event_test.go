package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		in   string
		name string
		args string
	}{
		{`{"name":"chat","args":["hi",1]}`, "chat", `["hi",1]`},
		{`{"name":"noargs"}`, "noargs", `[]`},
		{`{"name":"n","args":null}`, "n", `[]`},
		{`{"name":"n","args":[]}`, "n", `[]`},
		{`{"args":[{"a":[1,{"b":"]}"}]}],"name":"later"}`, "later", `[{"a":[1,{"b":"]}"}]}]`},
		{" \t\r\n{ \"name\" : \"sp\" , \"args\" : [ 1 ] } \n", "sp", `[ 1 ]`},
		{`{"name":"","args":[true,false,null,-1.5e3]}`, "", `[true,false,null,-1.5e3]`},
		{`{"name":"q\"\\\/\u00e9\ud83d\ude00"}`, "q\"\\/é😀", `[]`},
		{`{"name":"a","name":"b"}`, "b", `[]`},               // the last key wins, as with JSON.parse
		{`{"n\u0061me":"escaped key"}`, "escaped key", `[]`}, // keys compare unescaped
		{`{"name":"x","NAME":"y","Args":"no"}`, "x", `[]`},   // and exactly
		{`{"name":"x","extra":{"args":"nested"},"z":1}`, "x", `[]`},
		{`{"name":"x","args":["\u2028"]}`, "x", `["\u2028"]`},
		{"{\"name\":\"bad\xffutf8\"}", "bad\ufffdutf8", `[]`},
	}
	for _, tc := range tests {
		data := []byte(tc.in)
		name, args, err := ParseEvent(data)
		if err != nil || name != tc.name || string(args) != tc.args {
			t.Errorf("ParseEvent(%s) = %q %s %v; want %q %s", tc.in, name, args, err, tc.name, tc.args)
		}
		// args aliases data when present.
		if tc.args != "[]" && len(args) > 0 && !aliases(data, args) {
			t.Errorf("ParseEvent(%s): args does not alias data", tc.in)
		}
	}
	for _, bad := range []string{``, ` `, `{}`, `null`, `"name"`, `[{"name":"x"}]`, `{"name":1}`, `{"name":null}`,
		`{"name":["x"]}`, `{"name":"x","args":{}}`, `{"name":"x","args":"s"}`, `{"name":"x","args":0}`,
		`{"name":"x"`, `{"name":"x"}}`, `{"name":"x"} {}`, `{"name":"x",}`, `{'name':'x'}`, "{\"name\":\"a\x01\"}"} {
		if _, _, err := ParseEvent([]byte(bad)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("ParseEvent(%q) error = %v", bad, err)
		}
	}
}

// aliases reports whether sub lies inside b's memory.
func aliases(b, sub []byte) bool {
	if len(sub) == 0 || len(b) == 0 {
		return false
	}
	for i := range b {
		if &b[i] == &sub[0] {
			return i+len(sub) <= len(b)
		}
	}
	return false
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name, args, want string
	}{
		{"e", "", `{"name":"e"}`},
		{"e", "[]", `{"name":"e"}`}, // args omitted when empty, as the reference does
		{"e", "[1]", `{"name":"e","args":[1]}`},
		{"chat", `["hi",{"a":1}]`, `{"name":"chat","args":["hi",{"a":1}]}`},
		{`q"</`, `[1]`, `{"name":"q\"\u003c/","args":[1]}`},
		{"e", "[\"\u2028\u2029€\"]", `{"name":"e","args":["\u2028\u2029€"]}`},
		{"\u2028", "", `{"name":"\u2028"}`},
	}
	for _, tc := range tests {
		got := AppendEvent([]byte("x"), tc.name, []byte(tc.args))
		if string(got) != "x"+tc.want {
			t.Errorf("AppendEvent(%q, %s) = %s, want %s", tc.name, tc.args, got[1:], tc.want)
		}
		name, args, err := ParseEvent(got[1:])
		if err != nil || name != tc.name {
			t.Errorf("ParseEvent(AppendEvent(%q)) = %q %v", tc.name, name, err)
		}
		if tc.args != "" && !bytes.Equal(args, AppendJSONArgs(nil, []byte(tc.args))) {
			t.Errorf("ParseEvent(AppendEvent(%q, %s)) args = %s", tc.name, tc.args, args)
		}
	}
}

func TestAcks(t *testing.T) {
	tests := []struct {
		in      string
		id      uint64
		args    string
		hasArgs bool
	}{
		{"12", 12, "", false},
		{"0", 0, "", false},
		{`3+["ok"]`, 3, `["ok"]`, true},
		{`3+[]`, 3, `[]`, true},
		{`7+ [1, {"a":"+"}] `, 7, ` [1, {"a":"+"}] `, true},
		{"18446744073709551615+[null]", 1<<64 - 1, "[null]", true},
	}
	for _, tc := range tests {
		id, args, has, err := ParseAck([]byte(tc.in))
		if err != nil || id != tc.id || string(args) != tc.args || has != tc.hasArgs {
			t.Errorf("ParseAck(%q) = %d %s %v %v", tc.in, id, args, has, err)
		}
	}
	for _, bad := range []string{"", "x", "+[]", "3+", "3+{}", "3+[", "3+1", `3+"s"`, "-1", " 3", "3 ", "3++[]", "18446744073709551616"} {
		if _, _, _, err := ParseAck([]byte(bad)); !errors.Is(err, ErrBadAck) {
			t.Errorf("ParseAck(%q) = %v", bad, err)
		}
	}
	encodings := []struct {
		id      uint64
		args    string
		hasArgs bool
		want    string
	}{
		{7, "", false, "7"},
		{7, `["r"]`, true, `7+["r"]`},
		{7, `[]`, true, `7+[]`},
		{7, "[\"a\u2028b\u2029c€\"]", true, `7+["a\u2028b\u2029c€"]`}, // the client's ack regexp stops at raw line terminators
	}
	for _, tc := range encodings {
		if got := string(AppendAck(nil, tc.id, []byte(tc.args), tc.hasArgs)); got != tc.want {
			t.Errorf("AppendAck(%d, %s, %v) = %s, want %s", tc.id, tc.args, tc.hasArgs, got, tc.want)
		}
	}
}

func TestAppendJSONArgs(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		`["plain"]`:            `["plain"]`,
		"[\"\u2028\"]":         `["\u2028"]`,
		"[\"\u2029\u2028x\"]":  `["\u2029\u2028x"]`,
		"[\"\u2020\u20ac\"]":   "[\"\u2020\u20ac\"]", // other E2 80 xx characters stay
		"[\"\xe2\x80\"]":       "[\"\xe2\x80\"]",     // a truncated sequence stays
		"[\"\xe2\x80":          "[\"\xe2\x80",
		"\xe2\x80\xa8\xe2\x80": "\\u2028\xe2\x80",
	} {
		if got := string(AppendJSONArgs(nil, []byte(in))); got != want {
			t.Errorf("AppendJSONArgs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorPackets(t *testing.T) {
	tests := []struct {
		ep             string
		reason, advice int
		want           string
	}{
		{"", ReasonClientNotHandshaken, AdviceReconnect, "7:::1+0"},
		{"/priv", ReasonUnauthorized, -1, "7::/priv:2"},
		{"", ReasonTransportNotSupported, -1, "7:::0"},
		{"/chat", ReasonUnauthorized, AdviceReconnect, "7::/chat:2+0"},
	}
	for _, tc := range tests {
		p := ErrorPacket(tc.ep, tc.reason, tc.advice)
		if got := p.String(); got != tc.want {
			t.Errorf("ErrorPacket(%q, %d, %d) = %s, want %s", tc.ep, tc.reason, tc.advice, got, tc.want)
		}
		q, err := DecodeString(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		r, a, err := ParseErrorData(q.Data)
		if err != nil || r != tc.reason || a != tc.advice || q.Endpoint != tc.ep {
			t.Errorf("ParseErrorData(%q) = %d %d %v", q.Data, r, a, err)
		}
	}
	for _, bad := range []string{"", "+0", "1+", "x", "1+x", "-1", "1+-1", "1+0+0", "1234567890"} {
		if _, a, err := ParseErrorData([]byte(bad)); !errors.Is(err, ErrBadErrorData) || a != -1 {
			t.Errorf("ParseErrorData(%q) = %d, %v", bad, a, err)
		}
	}
}
