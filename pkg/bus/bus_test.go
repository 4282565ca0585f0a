package bus

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRouteRoundTrip(t *testing.T) {
	routes := []Route{
		{Op: OpDeliver, SID: "s1", Time: 1700000000123, Packet: "5:::{\"name\":\"x\"}\nwith newline"},
		{Op: OpWake, SID: "s1", Arg: "p7"},
		{Op: OpOffer, SID: "s1", Arg: "p7", Time: 1700000000124, Packet: "6:::1+[\"ok\"]\nline"},
		{Op: OpKick, SID: "s1", Arg: "p8"},
		{Op: OpClose, SID: "s1", Arg: "server", Packet: "0::"},
		{Op: OpClose, SID: "s1", Arg: "timeout"},
		{Op: OpJoin, SID: "s1", Arg: "/chat", Room: "lobby"},
		{Op: OpLeave, SID: "s1", Arg: "/chat"},
		{Op: OpBroadcast, Arg: "", Room: "r", SID: "except", Time: 5, Packet: "3:::hi"},
		{Op: OpAuth, SID: "a1", Arg: "1", Room: "ok", Packet: `{"user":"ann"}`},
		{Op: OpProbe, SID: "nonce"},
	}
	for _, r := range routes {
		got, err := ParseRoute(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRoute(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
	for _, bad := range []string{"", "D", "X\nfoo", "D\nonly-sid", "B\n/chat\nroom", "O\nsid\npid\n5"} {
		if _, err := ParseRoute(bad); !errors.Is(err, ErrBadRoute) {
			t.Errorf("ParseRoute(%q) error = %v", bad, err)
		}
	}
}

func TestSignalRoundTrip(t *testing.T) {
	signals := []Signal{
		{Kind: KindEvent, SID: "s1", NS: "/chat", Gateway: "g1", Time: time.UnixMilli(1700000000123),
			Name: "echo", Args: `[1,"x:\n5:"]`, MsgID: 7, HasID: true, AckData: true},
		{Kind: KindMessage, SID: "s2", Gateway: "g1", Time: time.UnixMilli(1), Data: ""},
		{Kind: KindConnect, SID: "s3", NS: "/a:b", Query: "?t=1", Transport: "xhr-polling"},
		{Kind: KindDisconnect, SID: "s4", Reason: ReasonClient, MsgID: 0, HasID: true},
		{Kind: KindAuthorize, SID: "s5", Data: "{\"é\":1}", Reply: "gw 9"},
	}
	for _, s := range signals {
		v := s.Values()
		if len(v) != 2 || v[0] != SignalField {
			t.Fatalf("Values() = %q", v)
		}
		got, err := ParseSignal("1-0", map[string]any{v[0].(string): v[1]})
		s.ID = "1-0"
		if err != nil || got != s {
			t.Errorf("ParseSignal(%q) = %+v, %v; want %+v", v[1], got, err, s)
		}
	}
}

// Entries of schema version 1 (a stream field per signal field), as
// gateways before version 2 wrote them, are still read.
func TestParseSignalVersion1(t *testing.T) {
	got, err := ParseSignal("1-0", map[string]any{"v": "1", "kind": "event", "sid": "s1", "ns": "/chat",
		"gw": "g1", "ts": "1700000000123", "id": "7", "ackdata": "1", "name": "echo", "args": "[1]"})
	want := Signal{ID: "1-0", Kind: KindEvent, SID: "s1", NS: "/chat", Gateway: "g1",
		Time: time.UnixMilli(1700000000123), Name: "echo", Args: "[1]", MsgID: 7, HasID: true, AckData: true}
	if err != nil || got != want {
		t.Fatalf("ParseSignal = %+v, %v; want %+v", got, err, want)
	}
}

func TestParseSignalRejects(t *testing.T) {
	good := (&Signal{Kind: KindEvent, SID: "s", Name: "e"}).Pack()
	for _, bad := range []map[string]any{
		{},
		{"v": "1", "kind": "event"},
		{"v": "3", "kind": "event", "sid": "s"},
		{"v": "1", "kind": "nonsense", "sid": "s"},
		{"v": "1", "kind": "event", "sid": "s", "id": "x"},
		{"s": ""},
		{"s": "1:2"},
		{"s": good[:len(good)-1]},
		{"s": good + "x"},
		{"s": strings.Replace(good, "1:2", "1:3", 1)},
		{"s": strings.Replace(good, "5:event", "5:evenx", 1)},
		{"s": "99999999999:" + good},
		{"s": "-1:" + good},
	} {
		if _, err := ParseSignal("1-0", bad); !errors.Is(err, ErrBadSignal) {
			t.Errorf("ParseSignal(%q) error = %v", bad, err)
		}
	}
}

// Any packed value parses or fails with ErrBadSignal, never panics; what
// parses packs back to the same bytes.
func FuzzParseSignalPacked(f *testing.F) {
	f.Add((&Signal{Kind: KindEvent, SID: "s1", NS: "/chat", Name: "echo", Args: "[1]", MsgID: 3, HasID: true}).Pack())
	f.Add((&Signal{Kind: KindDisconnect, SID: "s", Reason: "client", Time: time.UnixMilli(5)}).Pack())
	f.Add("1:2")
	f.Fuzz(func(t *testing.T, packed string) {
		s, err := ParseSignal("1-0", map[string]any{SignalField: packed})
		if err != nil {
			if !errors.Is(err, ErrBadSignal) {
				t.Fatalf("error %v is not ErrBadSignal", err)
			}
			return
		}
		again, err := ParseSignal("1-0", map[string]any{SignalField: s.Pack()})
		if err != nil || again != s {
			t.Fatalf("re-parse of %q: %+v, %v; want %+v", s.Pack(), again, err, s)
		}
	})
}

func TestPartitionIsStableAndSpread(t *testing.T) {
	// FNV-1a 32 of "abc" is 0x1a47e90b; other languages must agree.
	if got := Partition("abc", 16); got != 0x1a47e90b%16 {
		t.Fatalf("Partition(abc) = %d", got)
	}
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		seen[Partition(string(rune('a'+i%26))+string(rune('A'+i/26)), 16)] = true
	}
	if len(seen) < 12 {
		t.Fatalf("200 ids landed on %d of 16 partitions", len(seen))
	}
}

func TestEachRoute(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want []string
		bad  bool
	}{
		{msg: "D\ns1\n5\n1::", want: []string{"D\ns1\n5\n1::"}},
		{msg: "M\n3\nabc2\nde", want: []string{"abc", "de"}},
		{msg: "M\n0\n1\n\n", want: []string{"", "\n"}},
		{msg: "M\n", want: nil},
		{msg: "M\n9\nabc", bad: true},
		{msg: "M\n2\nab3", bad: true, want: []string{"ab"}},
		{msg: "M\nx\nab", bad: true},
		{msg: "M\n-1\nab", bad: true},
		{msg: "M\n\nab", bad: true},
	} {
		var got []string
		err := EachRoute(tc.msg, func(m string) { got = append(got, m) })
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("EachRoute(%q) = %q, %v; want %q, bad %v", tc.msg, got, err, tc.want, tc.bad)
		}
		if err != nil && !errors.Is(err, ErrBadRoute) {
			t.Errorf("EachRoute(%q): %v is not ErrBadRoute", tc.msg, err)
		}
	}
}

func FuzzEachRoute(f *testing.F) {
	f.Add("M\n3\nabc2\nde")
	f.Add("D\ns\n1\n2::")
	f.Fuzz(func(t *testing.T, msg string) {
		total := 0
		_ = EachRoute(msg, func(m string) { total += len(m) })
		if total > len(msg) {
			t.Fatalf("routes longer than the message")
		}
	})
}

var benchSignal = Signal{Kind: KindEvent, SID: "AbCdEfGhIjKlMnOpQrStUv", Gateway: "gw-1",
	Time: time.UnixMilli(1764057600000), Name: "echo", Args: `[1,"hello"]`, MsgID: 3, HasID: true, AckData: true}

func BenchmarkSignalPack(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = benchSignal.Pack()
	}
}

func BenchmarkParseSignal(b *testing.B) {
	values := map[string]any{SignalField: benchSignal.Pack()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSignal("1-0", values); err != nil {
			b.Fatal(err)
		}
	}
}
