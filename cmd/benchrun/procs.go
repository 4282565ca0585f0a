package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/realtime/realtime/internal/freeport"
)

// proc is one child process (redis-server, gateway, worker, node) with its
// combined output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
}

// startProc starts bin with args, its stdout and stderr appended to
// logDir/name.log. If lineFn is set, stdout is also scanned line by line
// (and then still copied to the log). The child is killed if benchrun dies.
func startProc(logDir, name, dir string, env []string, lineFn func(string), bin string, args ...string) (*proc, error) {
	p := &proc{name: name, logPath: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout io.ReadCloser
	if lineFn != nil {
		if stdout, err = p.cmd.StdoutPipe(); err != nil {
			f.Close()
			return nil, err
		}
	} else {
		p.cmd.Stdout = f
	}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var copying sync.WaitGroup
	if stdout != nil {
		copying.Add(1)
		go func() {
			defer copying.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				fmt.Fprintln(f, sc.Text())
				lineFn(sc.Text())
			}
		}()
	}
	go func() {
		copying.Wait()
		_ = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// procs returns the server processes of a target in a scenario: the
// gateway, the worker and Redis, or the Node process; with a load
// balancer, also the second gateway and the target's haproxy.
func (s *servers) procs(sc Scenario, target string) []*proc {
	var ps []*proc
	if target == targetCluster {
		ps = []*proc{s.gateway, s.worker, s.redis}
		if sc.LB {
			ps = append(ps, s.lb.gateway2, s.lb.cluster)
		}
		return ps
	}
	ps = []*proc{s.node}
	if sc.LB {
		ps = append(ps, s.lb.reference)
	}
	return ps
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL; it is idempotent.
func (p *proc) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logTail returns the last n bytes of the log, for error messages.
func (p *proc) logTail(n int64) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// failure wraps err with where the process's log is and its tail.
func (p *proc) failure(err error) error {
	return fmt.Errorf("%s: %w (log %s):\n%s", p.name, err, p.logPath, p.logTail(2000))
}

// waitFor calls ready every 50ms until it returns nil, the process exits or
// timeout passes.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p.exited() {
			return p.failure(errors.New("exited before it was ready"))
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Errorf("not ready after %s: %v", timeout, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// redisPing sends PING in the inline protocol and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// httpOK expects 200 from url.
func httpOK(url string) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// Paths says where benchrun finds the programs it starts.
type Paths struct {
	Bin         string // directory of gateway, worker, siobench
	Node        string // node executable
	Reference   string // the reference echo server script
	RedisServer string // redis-server executable
	HAProxy     string // haproxy executable
	LBConfig    string // the shipped haproxy configuration the load balancers derive from
}

// servers is everything benchrun starts: Redis, one gateway, one echo
// worker (the cluster) and the reference Node server.
type servers struct {
	paths  Paths
	logDir string

	redis, gateway, worker, node *proc
	redisURL                     string
	gatewayURL, referenceURL     string
	gatewayPort, gatewayAdmin    int
	generation                   int // gateway restarts, for unique node ids

	// Load balancers, started for the first scenario that runs through
	// them (see lb.go).
	lb *balancers
}

// startServers starts Redis, the cluster and the reference and waits until
// each is ready. On error, what was started is stopped.
func startServers(ctx context.Context, paths Paths, logDir string) (s *servers, err error) {
	s = &servers{paths: paths, logDir: logDir}
	defer func() {
		if err != nil {
			s.stopAll()
		}
	}()
	if err = s.startRedis(ctx); err != nil {
		return nil, err
	}
	if s.gatewayPort, err = freeport.Loopback(); err != nil {
		return nil, err
	}
	if s.gatewayAdmin, err = freeport.Loopback(); err != nil {
		return nil, err
	}
	s.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", s.gatewayPort)
	if err = s.startGateway(ctx); err != nil {
		return nil, err
	}
	if err = s.startWorker(ctx); err != nil {
		return nil, err
	}
	if err = s.startReference(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *servers) startRedis(ctx context.Context) error {
	port, err := freeport.Loopback()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir, err := os.MkdirTemp(s.logDir, "redis-")
	if err != nil {
		return err
	}
	s.redis, err = startProc(s.logDir, "redis", dir, nil, nil, s.paths.RedisServer,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--dir", dir)
	if err != nil {
		return err
	}
	s.redisURL = "redis://" + addr + "/0"
	return waitFor(ctx, s.redis, 10*time.Second, func() error { return redisPing(addr) })
}

// startGateway starts the gateway on its fixed ports and waits for /readyz
// (which proves its Redis pub/sub path).
func (s *servers) startGateway(ctx context.Context) error {
	s.generation++
	var err error
	s.gateway, err = s.launchGateway(ctx, "gateway", fmt.Sprintf("bench-gw-%d", s.generation), s.gatewayPort, s.gatewayAdmin)
	return err
}

// launchGateway starts a gateway of the cluster and waits for its /readyz.
func (s *servers) launchGateway(ctx context.Context, name, node string, port, admin int, extra ...string) (*proc, error) {
	args := append([]string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"-admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"-redis", s.redisURL,
		"-node-id", node,
		"-log-level", "warn",
		// The reference has no admission control: do not let ours refuse
		// the connect scenario's handshakes.
		"-max-handshake-rate", "0",
		"-drain-delay", "0s", "-drain-timeout", "2s"}, extra...)
	p, err := startProc(s.logDir, name, "", nil, nil, filepath.Join(s.paths.Bin, "gateway"), args...)
	if err != nil {
		return nil, err
	}
	return p, waitFor(ctx, p, 20*time.Second, func() error {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
	})
}

func (s *servers) startWorker(ctx context.Context) error {
	admin, err := freeport.Loopback()
	if err != nil {
		return err
	}
	s.worker, err = startProc(s.logDir, "worker", "", nil, nil, filepath.Join(s.paths.Bin, "worker"),
		"-app", "echo", "-name", "bench-worker",
		"-admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"-redis", s.redisURL, "-log-level", "warn")
	if err != nil {
		return err
	}
	return waitFor(ctx, s.worker, 20*time.Second, func() error {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
	})
}

// startReference starts the Node reference server on any free port; it is
// ready when it prints "listening <port>".
func (s *servers) startReference(ctx context.Context) error {
	script, err := filepath.Abs(s.paths.Reference)
	if err != nil {
		return err
	}
	portc := make(chan string, 1)
	s.node, err = startProc(s.logDir, "reference", filepath.Dir(filepath.Dir(script)),
		[]string{"PORT=0", "HOST=127.0.0.1"},
		func(line string) {
			if p, ok := strings.CutPrefix(line, "listening "); ok {
				select {
				case portc <- strings.TrimSpace(p):
				default:
				}
			}
		},
		s.paths.Node, script)
	if err != nil {
		return err
	}
	select {
	case port := <-portc:
		s.referenceURL = "http://127.0.0.1:" + port
		return nil
	case <-s.node.done:
		return s.node.failure(errors.New("exited before it listened"))
	case <-time.After(20 * time.Second):
		return s.node.failure(errors.New("did not listen within 20s"))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restart stops and starts the server of target, so that a run starts from
// a fresh process (for RSS per connection).
func (s *servers) restart(ctx context.Context, target string) error {
	if target == targetCluster {
		s.gateway.stop(10 * time.Second)
		return s.startGateway(ctx)
	}
	s.node.stop(5 * time.Second)
	return s.startReference(ctx)
}

// check returns an error if a server has died.
func (s *servers) check() error {
	for _, p := range append([]*proc{s.redis, s.gateway, s.worker, s.node}, s.lb.procs()...) {
		if p != nil && p.exited() {
			return p.failure(errors.New("exited during the benchmark"))
		}
	}
	return nil
}

// url returns the address a scenario's clients use for a target: the
// target's load balancer for scenarios that run through one.
func (s *servers) url(sc Scenario, target string) string {
	if sc.LB {
		if target == targetCluster {
			return s.lb.clusterURL
		}
		return s.lb.referenceURL
	}
	if target == targetCluster {
		return s.gatewayURL
	}
	return s.referenceURL
}

// pid returns the server process of a target.

func (s *servers) pid(target string) int {
	if target == targetCluster {
		return s.gateway.pid()
	}
	return s.node.pid()
}

// stopAll stops everything, clients' side first.
func (s *servers) stopAll() {
	var wg sync.WaitGroup
	for _, p := range append([]*proc{s.gateway, s.node}, s.lb.procs()...) {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(10 * time.Second) }()
	}
	wg.Wait()
	s.worker.stop(10 * time.Second)
	s.redis.stop(5 * time.Second)
}
