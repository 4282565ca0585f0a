package main

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/internal/cli/clitest"
	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// The flags' defaults, as -h shows them, are the library's named defaults;
// every flag is either one of those or the command's own.
func TestHelpShowsLibraryDefaults(t *testing.T) {
	library := map[string]string{
		"handler-timeout":  worker.DefaultHandlerTimeout.String(),
		"max-attempts":     strconv.Itoa(worker.DefaultMaxAttempts),
		"lease-ttl":        worker.DefaultLeaseTTL.String(),
		"max-rooms":        strconv.Itoa(session.DefaultMaxRooms),
		"max-room-bytes":   strconv.Itoa(session.DefaultMaxRoomBytes),
		"prefix":           bus.DefaultPrefix,
		"partitions":       strconv.Itoa(bus.DefaultPartitions),
		"admin-addr":       cli.DefaultWorkerAdminAddr,
		"redis-mode":       string(cli.DefaultRedisMode),
		"retry-backoff":    bus.DefaultRetryBackoff.String(),
		"http-timeout":     bridge.DefaultTimeout.String(),
		"http-concurrency": strconv.Itoa(bridge.DefaultConcurrency),
		"http-max-batch":   strconv.Itoa(bridge.DefaultMaxBatch),
	}
	own := []string{"app", "group", "name", "pprof", "redis", "log-level", "log-format",
		"max-retry-backoff", "http-endpoint", "http-secret", "http-namespaces"}
	f := newFlags()
	clitest.CheckDefaults(t, f.cmd, library, own)
	clitest.CheckREADME(t, f.cmd, "../../README.md", "### Worker flags")
}

// With no flags given, the Config the command builds is the library's
// defaults, field by field, but for the app: the bundled echo app's group.
func TestConfigFromDefaultFlags(t *testing.T) {
	f := newFlags()
	clitest.Parse(t, f.cmd)
	got := f.config(nil, nil)
	want := worker.Config{
		Keys:           bus.NewKeys("", 0),
		App:            "echo",
		HandlerTimeout: worker.DefaultHandlerTimeout,
		MaxAttempts:    worker.DefaultMaxAttempts,
		LeaseTTL:       worker.DefaultLeaseTTL,
		MaxRooms:       session.DefaultMaxRooms,
		MaxRoomBytes:   session.DefaultMaxRoomBytes,
		RetryBackoff:   bus.DefaultRetryBackoff,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config from the default flags:\n%+v\nwant\n%+v", got, want)
	}
}

// The consumer group of the apps: -group, else the -app names sorted and
// joined with "+"; a name that cannot be a group is refused.
func TestAppGroup(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		err  bool
	}{
		{nil, "echo", false},
		{[]string{"-app", "echo,chat"}, "chat+echo", false},
		{[]string{"-app", " chat , echo,chat"}, "chat+echo", false},
		{[]string{"-app", "echo", "-group", "team-a"}, "team-a", false},
		{[]string{"-group", "a b"}, "", true},
	} {
		f := newFlags()
		clitest.Parse(t, f.cmd, tc.args...)
		got, err := f.appGroup()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q: group %q, %v; want %q (error %v)", tc.args, got, err, tc.want, tc.err)
		}
	}
}

// -app http needs a secret (flag or REALTIME_SECRET) and an http(s)
// endpoint, and runs alone; -http-endpoint needs -app http; the command
// refuses before touching Redis.
func TestHTTPAppRefusesBadSetups(t *testing.T) {
	t.Setenv("REALTIME_SECRET", "")
	for _, c := range []struct {
		args []string
		want error
	}{
		{[]string{"-app", "http", "-http-endpoint", "http://127.0.0.1:1/"}, bridge.ErrNoSecret},
		{[]string{"-app", "http", "-http-secret", "s"}, bridge.ErrBadEndpoint},
		{[]string{"-app", "http", "-http-secret", "s", "-http-endpoint", "127.0.0.1:8000"}, bridge.ErrBadEndpoint},
	} {
		if err := newFlags().run(append(c.args, "-redis", "redis://127.0.0.1:1/0")); !errors.Is(err, c.want) {
			t.Errorf("%v: %v, want %v", c.args, err, c.want)
		}
	}
	if err := newFlags().run([]string{"-app", "http,echo", "-redis", "redis://127.0.0.1:1/0"}); err == nil || !strings.Contains(err.Error(), "runs alone") {
		t.Errorf("-app http,echo: %v", err)
	}
	// An endpoint given to a bundled app would be ignored.
	if err := newFlags().run([]string{"-app", "echo", "-http-endpoint", "http://127.0.0.1:1/", "-redis", "redis://127.0.0.1:1/0"}); err == nil || !strings.Contains(err.Error(), "-http-endpoint is for -app http") {
		t.Errorf("-app echo -http-endpoint: %v", err)
	}
}

func TestParseNamespaces(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "", want: nil},
		{in: " ", want: nil},
		{in: "/", want: []string{""}},
		{in: "/,/chat", want: []string{"", "/chat"}},
		{in: " /chatroom , /chatroom", want: []string{"/chatroom"}},
		{in: "chat", bad: true},
		{in: "/a:b", bad: true},
		{in: "/,", bad: true},
	} {
		got, err := parseNamespaces(tc.in)
		if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseNamespaces(%q) = %q, %v; want %q (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
