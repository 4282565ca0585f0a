package testredis

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/freeport"
)

// SentinelMaster is the master name the Sentinel set monitors.
const SentinelMaster = "realtime"

// Sentinels is a Sentinel deployment started for a test: a primary, a
// replica and three sentinels (quorum two), all redis-server processes on
// loopback, so tests can kill the primary and watch the failover.
type Sentinels struct {
	// Servers are the data nodes; Servers[0] starts as the primary.
	Servers []*Server
	// Addrs are the sentinels' host:port.
	Addrs []string

	cmds []*exec.Cmd
}

// StartSentinels starts a Sentinel set for tb and stops it when tb ends. The
// sentinels consider a primary down after 1 s without an answer. It needs
// the redis-server binary (Docker is not used).
func StartSentinels(tb testing.TB) *Sentinels {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(tb, "no redis-server on PATH (apt-get install redis-server)")
	}
	set := &Sentinels{}
	tb.Cleanup(set.stop)
	for i := 0; i < 2; i++ {
		s := &Server{dir: tb.TempDir()}
		port, err := freeport.Loopback()
		if err != nil {
			tb.Fatalf("testredis: free port: %v", err)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		if i > 0 {
			host, pport, _ := strings.Cut(set.Servers[0].Addr, ":")
			s.extra = []string{"--replicaof", host, pport}
		}
		if err := s.startBinary(bin); err != nil {
			tb.Fatalf("testredis: %v", err)
		}
		set.Servers = append(set.Servers, s)
		tb.Cleanup(s.stop)
	}
	host, pport, _ := strings.Cut(set.Servers[0].Addr, ":")
	for i := 0; i < 3; i++ {
		port, err := freeport.Loopback()
		if err != nil {
			tb.Fatalf("testredis: free port: %v", err)
		}
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nprotected-mode no\n"+
			"sentinel monitor %s %s %s 2\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, SentinelMaster, host, pport, SentinelMaster, SentinelMaster, SentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		cmd, err := startReady(exec.Command(bin, conf, "--sentinel"), "+monitor master")
		if err != nil {
			tb.Fatalf("testredis: sentinel: %v", err)
		}
		set.cmds = append(set.cmds, cmd)
		set.Addrs = append(set.Addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	set.waitReplicaSynced(tb)
	return set
}

// URL returns the Sentinel URL of the set in go-redis's form
// (redis.ParseFailoverURL): the first sentinel as the host, the others as
// addr parameters, the master name as master_name.
func (s *Sentinels) URL() string {
	u := "redis://" + s.Addrs[0] + "/0?master_name=" + SentinelMaster
	for _, a := range s.Addrs[1:] {
		u += "&addr=" + a
	}
	return u
}

// Primary returns the data node the sentinels currently name as primary.
func (s *Sentinels) Primary(tb testing.TB) *Server {
	tb.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
	defer c.Close()
	addr, err := c.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil {
		tb.Fatalf("testredis: sentinel: %v", err)
	}
	for _, srv := range s.Servers {
		if srv.Addr == addr[0]+":"+addr[1] {
			return srv
		}
	}
	tb.Fatalf("testredis: sentinel names %v, not one of ours", addr)
	return nil
}

// WaitFailover waits until the sentinels name a primary other than old,
// and returns it.
func (s *Sentinels) WaitFailover(tb testing.TB, old *Server, within time.Duration) *Server {
	tb.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p := s.Primary(tb); p != old {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("testredis: no failover within %v", within)
	return nil
}

// waitReplicaSynced waits until the replica finished its first sync, so a
// failover has data to promote.
func (s *Sentinels) waitReplicaSynced(tb testing.TB) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Servers[1].Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatal("testredis: replica never synced")
}

func (s *Sentinels) stop() {
	for _, cmd := range s.cmds {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
