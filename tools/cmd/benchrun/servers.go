package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/realtime/realtime/internal/freeport"
)

// Paths says where benchrun finds the programs it starts.
type Paths struct {
	Bin         string // directory of gateway, worker, siobench
	BaselineBin string // directory of the baseline's gateway and worker ("": no baseline)
	Node        string // node executable
	Reference   string // the reference echo server script
	RedisServer string // redis-server executable
	HAProxy     string // haproxy executable
	LBConfig    string // the shipped haproxy configuration the load balancers derive from

	// The bridge scenario's (bridge.go).
	Python        string // a python3 with Django
	Gunicorn      string // gunicorn of that Python
	DjangoProject string // examples/django
}

// servers is everything benchrun starts: the cluster, the baseline (a
// cluster of the same shape built from another commit; nil without one)
// and the reference Node server.
type servers struct {
	paths  Paths
	logDir string

	cluster, baseline *cluster
	node              *proc
	referenceURL      string
	ceiling           *proc // bin/wsecho, the echo scenario's ceiling
	ceilingURL        string

	// Load balancers, started for the first scenario that runs through
	// them (see lb.go); the clusters' own are in their cluster.
	lbStarted      bool
	referenceLB    *proc
	referenceLBURL string
}

// cluster is one cluster target: its own redis-server, one gateway and one
// echo worker from bin, and, once a scenario runs through a load balancer,
// a second gateway and a haproxy in front of both. Each cluster target has
// its own Redis so that the targets share nothing but the machine.
type cluster struct {
	target      string   // targetCluster or targetBaseline
	bin         string   // directory of its gateway and worker
	redisServer string   // redis-server executable
	logDir      string   // its processes' logs
	workerApp   []string // the worker's -app flags (nil: -app echo)

	redis, gateway, worker    *proc
	redisURL, gatewayURL      string
	gatewayPort, gatewayAdmin int
	generation                int // gateway restarts, for unique node ids

	gateway2, haproxy *proc // started by startLB
	lbURL             string
}

// startServers starts the cluster, the baseline (if paths.BaselineBin is
// set) and the reference, and waits until each is ready. On error, what
// was started is stopped.
func startServers(ctx context.Context, paths Paths, logDir string) (s *servers, err error) {
	s = &servers{paths: paths, logDir: logDir}
	defer func() {
		if err != nil {
			s.stopAll()
		}
	}()
	s.cluster = &cluster{target: targetCluster, bin: paths.Bin, redisServer: paths.RedisServer, logDir: logDir}
	if err = s.cluster.start(ctx); err != nil {
		return nil, err
	}
	if paths.BaselineBin != "" {
		// Its logs in a directory of their own: the processes have the
		// cluster's names (gateway, worker, redis).
		dir := filepath.Join(logDir, targetBaseline)
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		s.baseline = &cluster{target: targetBaseline, bin: paths.BaselineBin, redisServer: paths.RedisServer, logDir: dir}
		if err = s.baseline.start(ctx); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
	}
	if err = s.startReference(ctx); err != nil {
		return nil, err
	}
	if err = s.startCeiling(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// startCeiling starts bin/wsecho on any free port; it is ready when it
// prints "listening <port>".
func (s *servers) startCeiling(ctx context.Context) error {
	portc := make(chan string, 1)
	var err error
	s.ceiling, err = startProc(s.logDir, targetCeiling, "", nil, func(line string) {
		if p, ok := strings.CutPrefix(line, "listening "); ok {
			select {
			case portc <- strings.TrimSpace(p):
			default:
			}
		}
	}, filepath.Join(s.paths.Bin, "wsecho"), "-addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	select {
	case port := <-portc:
		s.ceilingURL = "http://127.0.0.1:" + port
		return nil
	case <-time.After(10 * time.Second):
		return s.ceiling.failure(errors.New("did not print its port within 10s"))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// targets returns the targets in the order each scenario alternates them:
// cluster, baseline (if any), reference.
func (s *servers) targets() []string {
	if s.baseline != nil {
		return []string{targetCluster, targetBaseline, targetReference}
	}
	return []string{targetCluster, targetReference}
}

// clusters returns the cluster targets started (the baseline only if any).
func (s *servers) clusters() []*cluster {
	var cs []*cluster
	for _, c := range []*cluster{s.cluster, s.baseline} {
		if c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}

// clusterOf returns the cluster of target, nil for the reference.
func (s *servers) clusterOf(target string) *cluster {
	switch target {
	case targetCluster:
		return s.cluster
	case targetBaseline:
		return s.baseline
	}
	return nil
}

// start starts the cluster's Redis, gateway and worker, each once the one
// before is ready.
func (c *cluster) start(ctx context.Context) error {
	if err := c.startRedis(ctx); err != nil {
		return err
	}
	var err error
	if c.gatewayPort, err = freeport.Loopback(); err != nil {
		return err
	}
	if c.gatewayAdmin, err = freeport.Loopback(); err != nil {
		return err
	}
	c.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", c.gatewayPort)
	if err := c.startGateway(ctx); err != nil {
		return err
	}
	return c.startWorker(ctx)
}

func (c *cluster) startRedis(ctx context.Context) error {
	port, err := freeport.Loopback()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir, err := os.MkdirTemp(c.logDir, "redis-")
	if err != nil {
		return err
	}
	c.redis, err = startProc(c.logDir, "redis", dir, nil, nil, c.redisServer,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--dir", dir)
	if err != nil {
		return err
	}
	c.redisURL = "redis://" + addr + "/0"
	return waitFor(ctx, c.redis, 10*time.Second, func() error { return redisPing(addr) })
}

// startGateway starts the gateway on its fixed ports and waits for /readyz
// (which proves its path from Redis).
func (c *cluster) startGateway(ctx context.Context) error {
	c.generation++
	var err error
	c.gateway, err = c.launchGateway(ctx, "gateway", fmt.Sprintf("bench-gw-%d", c.generation), c.gatewayPort, c.gatewayAdmin)
	return err
}

// launchGateway starts a gateway of the cluster and waits for its /readyz.
// The process is returned also when it did not become ready, so that it
// can be stopped.
func (c *cluster) launchGateway(ctx context.Context, name, node string, port, admin int, extra ...string) (*proc, error) {
	args := append([]string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"-admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"-redis", c.redisURL,
		"-node-id", node,
		"-log-level", "warn",
		// The reference has no admission control: do not let ours refuse
		// the connect scenario's handshakes.
		"-max-handshake-rate", "0",
		"-drain-delay", "0s", "-drain-timeout", "2s"}, extra...)
	p, err := startProc(c.logDir, name, "", nil, nil, filepath.Join(c.bin, "gateway"), args...)
	if err != nil {
		return nil, err
	}
	return p, waitFor(ctx, p, 20*time.Second, func() error {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
	})
}

func (c *cluster) startWorker(ctx context.Context) error {
	admin, err := freeport.Loopback()
	if err != nil {
		return err
	}
	app := c.workerApp
	if app == nil {
		app = []string{"-app", "echo"}
	}
	args := append(app, "-name", "bench-worker", "-admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"-redis", c.redisURL, "-log-level", "warn")
	c.worker, err = startProc(c.logDir, "worker", "", nil, nil, filepath.Join(c.bin, "worker"), args...)
	if err != nil {
		return err
	}
	return waitFor(ctx, c.worker, 20*time.Second, func() error {
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
	})
}

// procs returns the cluster's server processes: the gateway, the worker
// and Redis; with lb, also the second gateway and the haproxy.
func (c *cluster) procs(lb bool) []*proc {
	ps := []*proc{c.gateway, c.worker, c.redis}
	if lb {
		ps = append(ps, c.gateway2, c.haproxy)
	}
	return ps
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

// procs returns the server processes of a target in a scenario: the
// gateway, the worker and Redis, or the Node process; with a load
// balancer, also the second gateway and the target's haproxy.
func (s *servers) procs(sc Scenario, target string) []*proc {
	if target == targetCeiling {
		return []*proc{s.ceiling}
	}
	if c := s.clusterOf(target); c != nil {
		return c.procs(sc.LB)
	}
	ps := []*proc{s.node}
	if sc.LB {
		ps = append(ps, s.referenceLB)
	}
	return ps
}

// restart stops and starts the server of target, so that a run starts from
// a fresh process (for RSS per connection).
func (s *servers) restart(ctx context.Context, target string) error {
	if c := s.clusterOf(target); c != nil {
		c.gateway.stop(10 * time.Second)
		return c.startGateway(ctx)
	}
	s.node.stop(5 * time.Second)
	return s.startReference(ctx)
}

// check returns an error if a server has died.
func (s *servers) check() error {
	for _, p := range s.all() {
		if p != nil && p.exited() {
			return p.failure(errors.New("exited during the benchmark"))
		}
	}
	return nil
}

// all returns every process started (nil entries for those not started).
func (s *servers) all() []*proc {
	ps := []*proc{s.node, s.referenceLB, s.ceiling}
	for _, c := range s.clusters() {
		ps = append(ps, c.procs(true)...)
	}
	return ps
}

// url returns the address a scenario's clients use for a target: the
// target's load balancer for scenarios that run through one.
func (s *servers) url(sc Scenario, target string) string {
	if target == targetCeiling {
		return s.ceilingURL
	}
	if c := s.clusterOf(target); c != nil {
		if sc.LB {
			return c.lbURL
		}
		return c.gatewayURL
	}
	if sc.LB {
		return s.referenceLBURL
	}
	return s.referenceURL
}

// pid returns the server process of a target.
func (s *servers) pid(target string) int {
	if c := s.clusterOf(target); c != nil {
		return c.gateway.pid()
	}
	return s.node.pid()
}

// stopAll stops everything, clients' side first: the load balancers, the
// gateways and the reference together, then the workers, then Redis.
func (s *servers) stopAll() {
	front := []*proc{s.node, s.referenceLB, s.ceiling}
	for _, c := range s.clusters() {
		front = append(front, c.gateway, c.gateway2, c.haproxy)
	}
	var wg sync.WaitGroup
	for _, p := range front {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(10 * time.Second) }()
	}
	wg.Wait()
	for _, c := range s.clusters() {
		c.worker.stop(10 * time.Second)
	}
	for _, c := range s.clusters() {
		c.redis.stop(5 * time.Second)
	}
}
