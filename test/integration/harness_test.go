// Package integration runs the real binaries (gateways, workers) as
// processes against a real redis-server and drives them with raw HTTP and
// websocket exchanges, as the official client would.
package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds the commands once per test run and returns the path of one.
// REALTIME_TEST_RACE=1 builds them with the race detector; with GOCOVERDIR
// set they are built for coverage and write it there (make cover).
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "realtime-bin-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", binDir + "/"}
		if os.Getenv("REALTIME_TEST_RACE") != "" {
			// The processes under test with the race detector; with
			// GORACE=halt_on_error=1 a race ends the process and fails the test.
			args = append(args, "-race")
		}
		if os.Getenv("GOCOVERDIR") != "" {
			// make cover: the processes write their coverage there on exit.
			args = append(args, "-cover", "-coverpkg=github.com/realtime/realtime/...")
		}
		// The root module's commands, and siobench from the tools module
		// (tools/, its own go.mod), built in its own folder.
		tools, _ := filepath.Abs("../../tools")
		for _, b := range []struct{ dir, pkg string }{
			{"", "github.com/realtime/realtime/cmd/..."},
			{tools, "./cmd/siobench"},
		} {
			cmd := exec.Command("go", append(slices.Clip(args), b.pkg)...)
			cmd.Dir = b.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// cluster is one test's Redis and the processes started against it.
type cluster struct {
	t     *testing.T
	redis *testredis.Server
	rdb   *redis.Client
	keys  bus.Keys
	dir   string   // the processes' working directory ("": the test's)
	env   []string // more environment for the processes
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	srv := testredis.Start(t)
	return &cluster{t: t, redis: srv, rdb: srv.Client(t), keys: bus.NewKeys("", 0)}
}

// proc is a process started by a test.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	addr string // the HTTP address it listens on
	done chan struct{}

	mu  sync.Mutex
	log strings.Builder
}

// waitInterval is how often waitUntil checks its condition.
const waitInterval = 50 * time.Millisecond

// waitUntil checks cond every waitInterval until it returns nil, and fails
// the test if timeout passes first, with what and the last error of cond
// (which says what it saw). It is the wait for a condition that other
// processes make true; cond may fail the test itself when it sees
// something that must never happen.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(waitInterval)
	}
}

// logged waits for a log line matching re and returns its first group.
func (p *proc) logged(re *regexp.Regexp) string {
	p.t.Helper()
	var group string
	waitUntil(p.t, p.name+" logs "+re.String(), 10*time.Second, func() error {
		m := re.FindStringSubmatch(p.logText())
		if m == nil {
			return errors.New("not logged")
		}
		group = m[1]
		return nil
	})
	return group
}

var (
	listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)
	workerRE = regexp.MustCompile(`msg="worker started" worker=(\S+)`)
)

// gateway starts a gateway process with extra flags and waits until it
// listens.
func (c *cluster) gateway(node string, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{
		"-addr", "127.0.0.1:0", "-admin-addr", "", "-node-id", node,
		"-redis", c.redis.URL(), "-log-level", "debug", "-route-refresh", "250ms",
	}, extra...)
	return c.start(node, listenRE, binary(c.t, "gateway"), args...)
}

// worker starts a worker process running app and waits until it runs.
func (c *cluster) worker(name, app string, extra ...string) *proc {
	c.t.Helper()
	args := append([]string{"-app", app, "-name", name, "-admin-addr", "", "-redis", c.redis.URL(),
		"-log-level", "debug", "-lease-ttl", "1500ms"}, extra...)
	return c.start(name, workerRE, binary(c.t, "worker"), args...)
}

// start runs bin and waits for a log line matching ready, whose first group
// is the process's address. Its log is printed when the test fails, or
// always with REALTIME_TEST_LOGS=1 (to compare a passing run with a
// failing one).
func (c *cluster) start(name string, ready *regexp.Regexp, bin string, args ...string) *proc {
	c.t.Helper()
	p := &proc{t: c.t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = c.dir
	if len(c.env) > 0 {
		p.cmd.Env = append(os.Environ(), c.env...)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if p.log.Len() < 1<<20 {
				p.log.WriteString(line + "\n")
			}
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	c.t.Cleanup(func() {
		if os.Getenv("GOCOVERDIR") != "" {
			// Coverage is written on a clean exit: drain first.
			p.signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
			}
		}
		p.signal(syscall.SIGKILL)
		<-p.done
		if c.t.Failed() || os.Getenv("REALTIME_TEST_LOGS") != "" {
			c.t.Logf("--- log of %s ---\n%s", name, p.logText())
		}
	})
	select {
	case p.addr = <-addrc:
	case <-p.done:
		c.t.Fatalf("%s exited early:\n%s", name, p.logText())
	case <-time.After(20 * time.Second):
		c.t.Fatalf("%s did not listen within 20s:\n%s", name, p.logText())
	}
	return p
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// get performs a GET and returns status and body.
func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	return do(t, http.MethodGet, url, "", "")
}

// post performs a POST and returns status and body.
func post(t *testing.T, url, contentType, body string) (int, string, http.Header) {
	t.Helper()
	return do(t, http.MethodPost, url, contentType, body)
}

var client = &http.Client{Timeout: 30 * time.Second}

func do(t *testing.T, method, url, contentType, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// handshake performs a handshake on p and returns the session id.
func handshake(t *testing.T, p *proc) string {
	t.Helper()
	return handshakeAt(t, "http://"+p.addr)
}

// handshakeAt performs a handshake at base (a gateway's or a balancer's
// URL) and returns the session id.
func handshakeAt(t *testing.T, base string) string {
	t.Helper()
	status, body, _ := get(t, base+"/socket.io/1/?t=1")
	if status != 200 {
		t.Fatalf("handshake: %d %q", status, body)
	}
	sid, _, ok := strings.Cut(body, ":")
	if !ok {
		t.Fatalf("handshake body %q", body)
	}
	return sid
}

// signals waits until the session has at least n signals and returns them.
func (c *cluster) signals(sid string, n int) []bus.Signal {
	c.t.Helper()
	var out []bus.Signal
	deadline := time.Now().Add(15 * time.Second)
	for {
		out = out[:0]
		msgs, err := c.rdb.XRange(context.Background(), c.keys.StreamFor(sid), "-", "+").Result()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, m := range msgs {
			s, err := bus.ParseSignal(m.ID, m.Values)
			if err != nil {
				c.t.Fatal(err)
			}
			if s.SID == sid {
				out = append(out, s)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// describe renders signals compactly for comparisons.
func describe(sigs []bus.Signal) []string {
	out := make([]string, 0, len(sigs))
	for _, s := range sigs {
		d := string(s.Kind) + " " + s.NS
		switch s.Kind {
		case bus.KindEvent:
			d += " " + s.Name + s.Args
		case bus.KindMessage, bus.KindJSON:
			d += " " + s.Data
		case bus.KindDisconnect:
			d += " " + string(s.Reason)
		case bus.KindAck:
			d += fmt.Sprintf(" %d%s", s.MsgID, s.Args)
		case bus.KindConnect:
			d += " " + s.Query
		}
		out = append(out, strings.Join(strings.Fields(d), " "))
	}
	return out
}

// frame builds a polling payload: each packet as \ufffd<len>\ufffd<packet>,
// len in UTF-16 code units (JavaScript's String.length).
func frame(packets ...string) string {
	var b strings.Builder
	for _, p := range packets {
		b.WriteString("\ufffd" + strconv.Itoa(len(utf16.Encode([]rune(p)))) + "\ufffd" + p)
	}
	return b.String()
}

// connected yields the ids of the sessions connected to the default
// namespace (every session a transport opened), read from Redis; a read
// error fails the test.
func (c *cluster) connected(ctx context.Context) iter.Seq[string] {
	return func(yield func(string) bool) {
		st := session.New(c.rdb, session.Config{Keys: c.keys, Node: "test"})
		for sid, err := range st.Sessions(ctx, "") {
			if err != nil {
				c.t.Fatal(err)
			}
			if !yield(sid) {
				return
			}
		}
	}
}
