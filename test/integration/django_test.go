package integration

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const djangoPython = "/usr/bin/python3"

var (
	runserverRE = regexp.MustCompile(`Starting development server at http://(\S+?)/`)
	gunicornRE  = regexp.MustCompile(`Listening at: http://(\S+) `)
)

// needDjango fails (in CI) or skips (elsewhere) unless Debian's Python has
// Django (python3-django, which .ci/run installs).
func needDjango(t *testing.T) {
	t.Helper()
	if err := exec.Command(djangoPython, "-c", "import django").Run(); err != nil {
		need(t, djangoPython+" has no Django (apt-get install python3-django): "+err.Error())
	}
}

// freeLoopbackPort returns a port nothing listens on now (runserver takes no
// port 0: it prints the address it was given).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// django starts examples/django (the echo contract and the chat, written
// with the django-realtime API of python/django-realtime), served by
// `manage.py runserver --noreload` or, with server "gunicorn", by Debian's
// gunicorn (two sync workers), with the bridge secret and, unless api is
// "", the server API of api in its environment; the chat's database is a
// new SQLite file (CHAT_DB), migrated first. It returns the bridge
// endpoint's URL.
func (c *cluster) django(server, api string) string {
	c.t.Helper()
	dir, err := filepath.Abs("../../examples/django")
	if err != nil {
		c.t.Fatal(err)
	}
	c.env = append(c.env, "REALTIME_SECRET="+bridgeSecret, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
		"CHAT_DB="+filepath.Join(c.t.TempDir(), "chat.sqlite3"))
	if api != "" {
		c.env = append(c.env, "REALTIME_API_URL="+api, "REALTIME_API_KEY="+apiTestKey)
	}
	migrate := exec.Command(djangoPython, filepath.Join(dir, "manage.py"), "migrate", "--no-input", "-v", "0")
	migrate.Env = append(os.Environ(), c.env...)
	if out, err := migrate.CombinedOutput(); err != nil {
		c.t.Fatalf("manage.py migrate: %v\n%s", err, out)
	}
	var p *proc
	switch server {
	case "gunicorn":
		if _, err := exec.LookPath("/usr/bin/gunicorn"); err != nil {
			need(c.t, "gunicorn is not installed (apt-get install gunicorn)")
		}
		p = c.start("django", gunicornRE, "/usr/bin/gunicorn", "--chdir", dir, "--bind", "127.0.0.1:0",
			"--workers", "2", "--timeout", "30", "--graceful-timeout", "5", "echoproject.wsgi")
		// The arbiter stops its workers (a SIGKILL would leave them
		// running until they notice, holding the log pipe open).
		c.t.Cleanup(func() {
			p.signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				c.t.Errorf("gunicorn did not stop within 10s of SIGTERM")
			}
		})
	default:
		addr := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(c.t))
		// runserver writes its banner to stdout, which start discards.
		p = c.start("django", runserverRE, "/bin/sh", "-c", `exec "$0" "$@" 1>&2`,
			djangoPython, filepath.Join(dir, "manage.py"), "runserver", addr, "--noreload")
	}
	return p.url("/realtime/")
}

// The official socket.io-client 0.9.16 passes the whole echo contract
// (acks, emits, messages, rooms, broadcasts, server-to-client acks, count
// through the server API, server disconnect; both namespaces) against two
// gateways whose workers are two `worker -app http` bridged to the Django
// project examples/django: served by runserver over websocket and
// xhr-polling (spread over the gateways, and through the shipped haproxy
// config), and by gunicorn over websocket.
func TestDjangoEchoContract(t *testing.T) {
	needDjango(t)
	script := nodeScript(t, "echo-contract.js")
	for _, tc := range []struct {
		server, transport string
		haproxy           bool
	}{
		{"runserver", "websocket", false},
		{"runserver", "xhr-polling", false},
		{"runserver", "xhr-polling", true},
		{"gunicorn", "websocket", false},
	} {
		name := tc.server + "/" + tc.transport
		if tc.haproxy {
			name += "/haproxy"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t)
			c.env = append(c.env, "REALTIME_API_KEY="+apiTestKey)
			gws, admins := c.lbGateways(2, "-api-addr", "127.0.0.1:0")
			api := "http://" + gws[0].logged(apiListenRE)
			endpoint := c.django(tc.server, api)
			for _, w := range []string{"w1", "w2"} {
				c.worker(w, "http", "-http-endpoint", endpoint, "-http-secret", bridgeSecret)
			}
			target := []string{"--urls", strings.Join(urls(gws...), ",")}
			if tc.haproxy {
				target = []string{"--url", c.haproxy(gws, admins)}
			}
			out := runNode(t, script, append(target, "--transport", tc.transport)...)
			if !contractPassed(out) {
				t.Fatalf("unexpected result:\n%s", out)
			}
			t.Logf("%s", lastLine(out))
		})
	}
}

// The development loop (`manage.py runrealtime`, as django-realtime's
// rungevent): one command runs the Django project and, next to it, the demo
// binary bridged to it with the server API on; the official client passes
// the whole echo contract against it, and stopping the command (SIGTERM)
// stops the cluster too.
func TestDjangoDevLoop(t *testing.T) {
	needDjango(t)
	script := nodeScript(t, "echo-contract.js")
	c := newCluster(t)
	dir, err := filepath.Abs("../../examples/django")
	if err != nil {
		t.Fatal(err)
	}
	cluster := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	api := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	django := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	c.env = append(c.env, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	p := c.start("runrealtime", runserverRE, "/bin/sh", "-c", `exec "$0" "$@" 1>&2`,
		djangoPython, filepath.Join(dir, "manage.py"), "runrealtime", django, "--noreload",
		"--demo", binary(t, "demo"), "--cluster-addr", cluster, "--api-addr", api)
	t.Cleanup(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("runrealtime did not stop within 15s of SIGTERM")
		}
	})
	if got := p.logged(listenRE); got != cluster {
		t.Fatalf("the demo listens on %s, want %s", got, cluster)
	}
	out := runNode(t, script, "--url", "http://"+cluster, "--transport", "websocket")
	if !contractPassed(out) {
		t.Fatalf("unexpected result:\n%s", out)
	}
	t.Logf("%s", lastLine(out))
	p.signal(syscall.SIGTERM)
	waitUntil(t, "the demo stops with runrealtime", 15*time.Second, func() error {
		if !strings.Contains(p.logText(), `msg="gateway drained"`) {
			return errors.New("the demo has not drained")
		}
		if conn, err := net.Dial("tcp", cluster); err == nil {
			conn.Close()
			return errors.New("the cluster address still accepts connections")
		}
		return nil
	})
}

// Under steady traffic from official clients (numbered echoes with acks,
// and plain echoes emitted back), the Django app is killed (SIGKILL) and
// started again on the same address, then the bridge worker is killed and
// another takes its partitions: every client keeps its session, and no ack
// or echo is lost, duplicated or reordered (the bridge retries what got no
// answer; effects are committed only with an answer).
func TestDjangoCrashUnderTraffic(t *testing.T) {
	needDjango(t)
	script := nodeScript(t, "steady.js")
	c := newCluster(t)
	gw := c.gateway("a")
	dir, err := filepath.Abs("../../examples/django")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	c.env = append(c.env, "REALTIME_SECRET="+bridgeSecret, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	django := func(name string) *proc {
		return c.start(name, runserverRE, "/bin/sh", "-c", `exec "$0" "$@" 1>&2`,
			djangoPython, filepath.Join(dir, "manage.py"), "runserver", addr, "--noreload")
	}
	bridgeFlags := []string{"-http-endpoint", "http://" + addr + "/realtime/", "-http-secret", bridgeSecret,
		"-retry-backoff", "100ms", "-max-retry-backoff", "400ms", "-max-attempts", "100", "-http-timeout", "3s"}
	app := django("django1")
	w1 := c.worker("w1", "http", bridgeFlags...)
	done := make(chan nodeResult, 1)
	go runNodeAsync(done, script, "--url", "http://"+gw.addr, "--transport", "websocket",
		"--clients", "4", "--seconds", "14", "--expect", "same-session", "--plain")
	time.Sleep(3 * time.Second)
	app.kill() // the app crashes mid-traffic
	time.Sleep(time.Second)
	django("django2")
	time.Sleep(3 * time.Second)
	retried := w1.logText()
	w1.kill() // the bridge crashes; w2 takes the partitions when w1's lease ends
	c.worker("w2", "http", bridgeFlags...)
	r := <-done
	if r.err != nil {
		t.Fatalf("steady.js: %v\n%s", r.err, r.out)
	}
	if m := summaryRE.FindStringSubmatch(r.out); m == nil || m[2] != "0" {
		t.Fatalf("unexpected result:\n%s", r.out)
	}
	t.Logf("%s", lastLine(r.out))
	// A request cut by the kill is a failed attempt; one refused while the
	// app is down was never given to it (bus.ErrNotAttempted). Which of
	// the two a run sees depends on whether a request was in flight.
	if !strings.Contains(retried, `msg="signal failed; retrying"`) &&
		!strings.Contains(retried, `msg="signal not given to its app; trying again`) {
		t.Errorf("the bridge retried nothing while the app was down:\n%s", retried)
	}
}
