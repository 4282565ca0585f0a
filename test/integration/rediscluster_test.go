package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// A gateway and a worker given a Redis Cluster URL (go-redis's form, or one
// node's URL with the default -redis-mode auto) connect with a cluster
// client, the partitions spread over the primaries: the handshake is served
// and the session is in the cluster; the worker runs without a CROSSSLOT
// error.
func TestGatewayOnRedisCluster(t *testing.T) {
	// Parallel: a Redis Cluster and processes of its own; it waits
	// on the cluster forming and the worker running 3 s.
	t.Parallel()
	rc := testredis.StartCluster(t, 3, 0)
	gatewayOnCluster(t, rc, nil, rc.URL(), "redis://"+rc.Nodes[1].Addr+"/0")

	// The worker: starts, and runs for 3 s without exiting; what Redis
	// refuses it logs as level=WARN or level=ERROR lines.
	w, exited := startOrExit(t, nil, "worker", workerRE, "-app", "echo", "-name", "w-cl", "-admin-addr", "",
		"-redis", rc.URL(), "-log-level", "debug", "-lease-ttl", "1500ms")
	if exited != nil {
		t.Fatalf("the worker exited at start (%v):\n%s", exited.err, exited.log)
	}
	select {
	case <-w.done:
		t.Fatalf("the worker exited:\n%s", w.logText())
	case <-time.After(3 * time.Second):
	}
	logs := w.logText()
	if strings.Contains(logs, "panic") || crossSlot.MatchString(logs) {
		t.Fatalf("the worker panicked or met CROSSSLOT:\n%s", logs)
	}
}

// A Redis Cluster that speaks only TLS (clients, replication, cluster bus):
// a gateway given its rediss:// cluster URL, or one node's rediss:// URL
// (auto mode), trusting its CA through SSL_CERT_FILE, gets as far over TLS
// as on plain TCP (TestGatewayOnRedisCluster), not a TLS or connection error.
func TestGatewayOnRedisClusterTLS(t *testing.T) {
	// Parallel: a Redis Cluster and certificates (in its own temporary
	// directory) of its own; SSL_CERT_FILE goes to its gateway only.
	t.Parallel()
	caFile, certFile, keyFile := writeTLSFiles(t, t.TempDir())
	rc := testredis.StartClusterTLS(t, 3, 0, testredis.TLSFiles{CA: caFile, Cert: certFile, Key: keyFile})
	if err := rc.Client(t).Set(t.Context(), "k", 1, 0).Err(); err != nil {
		t.Fatalf("test client over TLS: %v", err)
	}
	gatewayOnCluster(t, rc, []string{"SSL_CERT_FILE=" + caFile}, rc.URL(), "rediss://"+rc.Nodes[1].Addr+"/0")
}

var crossSlot = regexp.MustCompile(`(?m)^.*CROSSSLOT.*$`)

// gatewayOnCluster starts a gateway with each of urls (env added to its
// environment) and checks it serves a handshake whose session is in the
// cluster, under the default prefix.
func gatewayOnCluster(t *testing.T, rc *testredis.Cluster, env []string, urls ...string) {
	t.Helper()
	keys := bus.NewKeys("", 0)
	for i, url := range urls {
		node := fmt.Sprintf("gw-cl-%d", i)
		gw, exited := startOrExit(t, env, "gateway", listenRE, "-addr", "127.0.0.1:0", "-admin-addr", "",
			"-node-id", node, "-redis", url, "-log-level", "debug")
		if exited != nil {
			t.Fatalf("%s: the gateway exited at start (%v):\n%s", url, exited.err, exited.log)
		}
		status, body, _ := get(t, gw.url("/socket.io/1/?t=1"))
		if status != 200 {
			t.Fatalf("%s: handshake %d %q:\n%s", url, status, body, gw.logText())
		}
		sid, _, _ := strings.Cut(body, ":")
		n, err := rc.Client(t).Exists(t.Context(), keys.Session(sid)).Result()
		if err != nil || n != 1 {
			t.Fatalf("%s: handshake %q answered but no session %s in the cluster: %d %v", url, body, keys.Session(sid), n, err)
		}
	}
}

// exit is how a process ended before it was ready: its wait error and what
// it wrote.
type exit struct {
	err error
	log string
}

// startOrExit starts the command bin (env added to its environment) and waits until it logs a line
// matching ready (then it is a proc, killed with the test) or exits (then
// exited says how), 20 s at most.
func startOrExit(t *testing.T, env []string, bin string, ready *regexp.Regexp, args ...string) (*proc, *exit) {
	t.Helper()
	p := &proc{t: t, name: bin, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t, bin), args...)
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	addrc := make(chan string, 1)
	var scanned sync.WaitGroup
	scanned.Add(1)
	go func() {
		defer scanned.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	var waitErr error
	go func() { scanned.Wait(); waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.done:
		return nil, &exit{err: waitErr, log: p.logText()}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s neither ready nor exited within 20s:\n%s", bin, p.logText())
	}
	return nil, nil
}
