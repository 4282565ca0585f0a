package cli

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The default admin ports differ from each other and from the client port,
// and stay clear of the Prometheus exporter range (9100-9999, node_exporter
// first) and of Prometheus, Pushgateway and Alertmanager (9090-9094).
func TestDefaultAdminPortsAvoidExporters(t *testing.T) {
	ports := map[string]int{}
	for name, addr := range map[string]string{"gateway": DefaultGatewayAdminAddr, "worker": DefaultWorkerAdminAddr} {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s admin address %q: %v", name, addr, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("%s admin port %q: %v", name, p, err)
		}
		if port >= 9090 && port <= 9999 {
			t.Errorf("%s admin port %d is in the Prometheus ecosystem's allocations (9090-9999)", name, port)
		}
		if port == 8000 {
			t.Errorf("%s admin port %d is the gateway's client port", name, port)
		}
		ports[name] = port
	}
	if ports["gateway"] == ports["worker"] {
		t.Errorf("the gateway and the worker share the default admin port %d", ports["gateway"])
	}
}

// The profiler is served only when asked for; /metrics, /healthz and
// /readyz always are.
func TestAdminHandlerPprof(t *testing.T) {
	if DefaultPprof {
		t.Error("the profiler is on by default")
	}
	ready := func(context.Context) error { return nil }
	for _, on := range []bool{false, true} {
		srv := httptest.NewServer(AdminHandler(NewRegistry(), ready, nil, on))
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/goroutine?debug=1"} {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; resp.StatusCode != want {
				t.Errorf("pprof %v: GET %s: %d, want %d", on, path, resp.StatusCode, want)
			}
		}
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("pprof %v: GET %s: %d", on, path, resp.StatusCode)
			}
		}
		srv.Close()
	}
}

// /readyz carries the notes after its verdict, ready or not.
func TestAdminHandlerReadyNotes(t *testing.T) {
	notes := func() string { return "signals waiting for app chat: 3\n" }
	for _, fail := range []bool{false, true} {
		ready := func(context.Context) error {
			if fail {
				return errors.New("redis: down")
			}
			return nil
		}
		srv := httptest.NewServer(AdminHandler(NewRegistry(), ready, notes, false))
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		want, code := "ready\nsignals waiting for app chat: 3\n", http.StatusOK
		if fail {
			want, code = "not ready: redis: down\nsignals waiting for app chat: 3\n", http.StatusServiceUnavailable
		}
		if resp.StatusCode != code || string(body) != want {
			t.Errorf("fail %v: %d %q, want %d %q", fail, resp.StatusCode, body, code, want)
		}
	}
}

// A negative number or duration is refused when the flags are parsed,
// from the command line or the environment; zero and the defaults pass.
func TestNegativeFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		ok   bool
	}{
		{nil, "", true},
		{[]string{"-rate", "0", "-wait", "0s", "-n", "0"}, "", true},
		{[]string{"-rate", "-5"}, "", false},
		{[]string{"-wait", "-1s"}, "", false},
		{[]string{"-n", "-1"}, "", false},
		{nil, "-2", false},
	} {
		c := NewCommand("t", "TNEG_", "test")
		c.Flags.Float64("rate", 2000, "")
		c.Flags.Duration("wait", time.Second, "")
		c.Flags.Int("n", 1, "")
		t.Setenv("TNEG_N", tc.env)
		if tc.env == "" {
			os.Unsetenv("TNEG_N")
		}
		_, _, err := c.Parse(tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("%q (TNEG_N=%q): %v, want ok %v", tc.args, tc.env, err, tc.ok)
		}
	}
}

// Exit's line follows -log-format once Parse made the logger (so the last
// line of a process run with -log-format json is JSON too), and is plain
// text for an error Parse itself refused. The test runs itself again as
// the process that exits.
func TestExitLine(t *testing.T) {
	if args, ok := os.LookupEnv("CLI_TEST_EXIT_ARGS"); ok {
		c := NewCommand("t", "TEXIT_", "test")
		_, _, err := c.Parse(strings.Fields(args))
		if err == nil {
			err = errors.New("listen tcp: address in use")
		}
		c.Exit(err)
	}
	for _, tc := range []struct {
		args string
		want string // the whole of stderr
	}{
		{"-log-format json", `{"level":"ERROR","msg":"exiting","err":"listen tcp: address in use"}`},
		{"-log-format text", `level=ERROR msg=exiting err="listen tcp: address in use"`},
		{"-log-format yaml", `t: error: log format "yaml": want text or json`},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestExitLine$")
		cmd.Env = append(os.Environ(), "CLI_TEST_EXIT_ARGS="+tc.args)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("%s: %v, want exit status 1", tc.args, err)
		}
		// The time field is the one that changes from run to run.
		got := regexp.MustCompile(`"time":"[^"]*",|time=\S+ `).ReplaceAllString(strings.TrimSpace(stderr.String()), "")
		if got != tc.want {
			t.Errorf("%s: stderr %q, want %q", tc.args, got, tc.want)
		}
	}
}
