package testredis

import (
	"context"
	"slices"
	"testing"
)

func TestParseMonitorLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Command
	}{
		{`1796049355.231615 [0 lua] "SET" "a" "1"`, Command{Lua: true, Args: []string{"SET", "a", "1"}}},
		{`1.5 [0 127.0.0.1:38686] "set" "k" "a\"b\\c\n\x00\xff"`, Command{Args: []string{"set", "k", "a\"b\\c\n\x00\xff"}}},
		{`1.5 [0 unix:/tmp/r.sock] "ping"`, Command{Args: []string{"ping"}}},
	} {
		got, err := parseMonitorLine(tc.line)
		if err != nil || got.Lua != tc.want.Lua || !slices.Equal(got.Args, tc.want.Args) {
			t.Errorf("parseMonitorLine(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{`no brackets`, `1.5 [0 lua] SET`, `1.5 [0 lua] "unterminated`, `1.5 [0 lua] "a\x4"`} {
		if _, err := parseMonitorLine(bad); err == nil {
			t.Errorf("parseMonitorLine(%q): no error", bad)
		}
	}
}

// Monitor sees a client's commands and those its script ran, in order,
// binary-safe, up to the moment stop is called.
func TestMonitor(t *testing.T) {
	s := Start(t) // a redis-server or a container: Monitor only dials s.Addr
	rdb := s.Client(t)
	ctx := context.Background()
	stop := s.Monitor(t)
	if err := rdb.Set(ctx, "k", "a \"b\"\n\x00", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{"k"}).Err(); err != nil {
		t.Fatal(err)
	}
	got := stop()
	want := []Command{
		{Args: []string{"set", "k", "a \"b\"\n\x00"}},
		{Args: []string{"eval", "return redis.call('GET', KEYS[1])", "1", "k"}},
		{Lua: true, Args: []string{"GET", "k"}},
	}
	var cmds []Command
	for _, c := range got {
		if c.Args[0] != "hello" && c.Args[0] != "client" && c.Args[0] != "ping" { // go-redis's connection setup
			cmds = append(cmds, c)
		}
	}
	if len(cmds) != len(want) {
		t.Fatalf("commands %+v, want %+v", cmds, want)
	}
	for i := range want {
		if cmds[i].Lua != want[i].Lua || !slices.Equal(cmds[i].Args, want[i].Args) {
			t.Errorf("command %d = %+v, want %+v", i, cmds[i], want[i])
		}
	}
}
