// Package testredis gives each test suite a Redis of its own.
//
// Where a Docker engine answers (a developer laptop), the server comes from
// testcontainers-go. Where none does (our machines and CI), the same helper
// starts a local redis-server binary on a free loopback port, so tests can
// kill and restart it. When CI is set in the environment, a missing Redis
// fails the test; elsewhere it skips with a message saying how to get one.
//
// StartSentinels starts a primary, a replica and three sentinels, and
// StartCluster a Redis Cluster of redis-server processes, for tests of
// failover and of the cluster keyspace.
package testredis

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dockerclient "github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"

	"github.com/realtime/realtime/internal/freeport"
)

// Server is one Redis started for a test.
type Server struct {
	// Addr is host:port of the server.
	Addr string

	mu        sync.Mutex
	cmd       *exec.Cmd // binary mode
	dir       string    // binary mode: working directory
	extra     []string  // binary mode: more redis-server arguments
	container *tcredis.RedisContainer
	paused    bool
}

// URL returns the redis:// URL of the server, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Client returns a new go-redis client for the server, closed with the test.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts a Redis for tb and stops it when tb ends.
//
// Order of preference: REALTIME_TEST_REDIS_URL if set (an existing server the
// caller owns; Kill and Restart are then unavailable), testcontainers-go when
// a Docker engine is reachable, else the redis-server binary from PATH.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if url := os.Getenv("REALTIME_TEST_REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			tb.Fatalf("testredis: REALTIME_TEST_REDIS_URL: %v", err)
		}
		return &Server{Addr: opt.Addr}
	}
	if dockerAvailable() {
		s, err := startContainer()
		if err == nil {
			tb.Cleanup(s.stop)
			return s
		}
		tb.Logf("testredis: testcontainers failed (%v); falling back to redis-server", err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(tb, "no Docker engine and no redis-server on PATH (apt-get install redis-server)")
	}
	s := &Server{}
	s.dir = tb.TempDir()
	port, err := freeport.Loopback()
	if err != nil {
		tb.Fatalf("testredis: free port: %v", err)
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := s.startBinary(bin); err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.stop)
	return s
}

// StartAOF starts a redis-server binary (never a container: the test
// kills and restarts it) that keeps its data in an append-only file synced
// on every write (--appendonly yes --appendfsync always), so Restart after
// Kill brings back everything it acknowledged.
func StartAOF(tb testing.TB) *Server {
	tb.Helper()
	return StartArgs(tb, "--appendonly", "yes", "--appendfsync", "always")
}

// StartArgs starts a redis-server binary (never a container) on a free
// loopback port with more arguments, which override the defaults; "{port}"
// in an argument stands for that port (e.g. "--port", "0", "--tls-port",
// "{port}" to serve TLS there).
// Client and URL assume plain TCP without a password; a test of other
// setups makes its own clients.
func StartArgs(tb testing.TB, args ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(tb, "no redis-server on PATH (apt-get install redis-server)")
	}
	port, err := freeport.Loopback()
	if err != nil {
		tb.Fatalf("testredis: free port: %v", err)
	}
	s := &Server{dir: tb.TempDir(), Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	for _, a := range args {
		s.extra = append(s.extra, strings.ReplaceAll(a, "{port}", strconv.Itoa(port)))
	}
	if err := s.startBinary(bin); err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	tb.Cleanup(s.stop)
	return s
}

// StartBinary starts a redis-server binary on a free loopback port for a
// TestMain, where there is no testing.TB yet; stop ends it.
func StartBinary() (s *Server, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, fmt.Errorf("testredis: %w (apt-get install redis-server)", err)
	}
	dir, err := os.MkdirTemp("", "testredis-")
	if err != nil {
		return nil, nil, err
	}
	port, err := freeport.Loopback()
	if err != nil {
		return nil, nil, fmt.Errorf("testredis: free port: %w", err)
	}
	s = &Server{dir: dir, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if err := s.startBinary(bin); err != nil {
		return nil, nil, fmt.Errorf("testredis: %w", err)
	}
	return s, func() { s.stop(); _ = os.RemoveAll(dir) }, nil
}

// missing fails in CI and skips elsewhere.
func missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("testredis: %s (CI is set: a missing Redis is a failure)", why)
	}
	tb.Skipf("testredis: %s", why)
}

func dockerAvailable() bool {
	if os.Getenv("REALTIME_TEST_NO_DOCKER") != "" {
		return false
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return true
	}
	_, err := os.Stat("/var/run/docker.sock")
	return err == nil
}

func startContainer() (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := tcredis.Run(ctx, "redis:7-alpine")
	if err != nil {
		return nil, err
	}
	conn, err := c.ConnectionString(ctx)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	opt, err := redis.ParseURL(conn)
	if err != nil {
		_ = c.Terminate(context.Background())
		return nil, err
	}
	return &Server{Addr: opt.Addr, container: c}, nil
}

func (s *Server) startBinary(bin string) error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{
		"--bind", "127.0.0.1",
		"--port", port,
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--protected-mode", "no",
	}, s.extra...)
	cmd, err := startReady(exec.Command(bin, args...), "Ready to accept connections")
	if err != nil {
		return fmt.Errorf("redis-server on %s: %w", s.Addr, err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

// startReady starts cmd and waits (10 s at most) until it prints a line
// containing ready.
func startReady(cmd *exec.Cmd, ready string) (*exec.Cmd, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	readyCh := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(readyCh) })
			}
		}
	}()
	select {
	case <-readyCh:
		return cmd, nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("not ready after 10s")
	}
}

// Kill stops the server abruptly (SIGKILL), keeping its address for Restart.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		_ = s.setPaused(false) // a paused container cannot be stopped
	}
	switch {
	case s.cmd != nil:
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	case s.container != nil:
		d := time.Duration(0)
		if err := s.container.Stop(context.Background(), &d); err != nil {
			tb.Fatalf("testredis: stop container: %v", err)
		}
	default:
		tb.Fatalf("testredis: Kill is not available for an external server")
	}
}

// Restart starts a killed server again on the same address: empty, unless
// it was started by StartAOF.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if s.container != nil {
		if err := s.container.Start(context.Background()); err != nil {
			tb.Fatalf("testredis: start container: %v", err)
		}
		conn, err := s.container.ConnectionString(context.Background())
		if err != nil {
			tb.Fatalf("testredis: %v", err)
		}
		opt, _ := redis.ParseURL(conn)
		s.Addr = opt.Addr
		return
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	if err := s.startBinary(bin); err != nil {
		tb.Fatalf("testredis: restart: %v", err)
	}
}

// Pause freezes the server (SIGSTOP; docker pause for a container): it
// keeps its connections open and answers nothing, as a Redis stalled by a
// slow disk or a long command, until Resume. A paused server is resumed
// when the test ends.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.freeze(tb, true)
}

// Resume undoes Pause (SIGCONT; docker unpause).
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.freeze(tb, false)
}

func (s *Server) freeze(tb testing.TB, pause bool) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.setPaused(pause); err != nil {
		tb.Fatalf("testredis: %v", err)
	}
}

// setPaused pauses or resumes the server; s.mu is held.
func (s *Server) setPaused(pause bool) error {
	switch {
	case s.cmd != nil:
		sig := syscall.SIGCONT
		if pause {
			sig = syscall.SIGSTOP
		}
		if err := s.cmd.Process.Signal(sig); err != nil {
			return fmt.Errorf("signal redis-server: %w", err)
		}
	case s.container != nil:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			return fmt.Errorf("docker client: %w", err)
		}
		defer cli.Close()
		id := s.container.GetContainerID()
		if pause {
			_, err = cli.ContainerPause(ctx, id, dockerclient.ContainerPauseOptions{})
		} else {
			_, err = cli.ContainerUnpause(ctx, id, dockerclient.ContainerUnpauseOptions{})
		}
		if err != nil {
			return fmt.Errorf("docker pause/unpause: %w", err)
		}
	default:
		return fmt.Errorf("pause and resume are not available for an external server")
	}
	s.paused = pause
	return nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		_ = s.setPaused(false) // a paused container cannot be stopped
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
	if s.container != nil {
		_ = s.container.Terminate(context.Background())
	}
	if s.dir != "" {
		_ = os.RemoveAll(filepath.Clean(s.dir))
	}
}
