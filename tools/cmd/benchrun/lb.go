package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/realtime/realtime/internal/freeport"
	"github.com/realtime/realtime/internal/haproxycfg"
)

// Scenarios with LB set run through load balancers, as issue 6 asks of
// polling: haproxy with the shipped configuration (deploy/haproxy), one
// process per target so that each target's CPU can be counted.
//
//   - cluster (and the baseline, each its own): two gateways in plain round
//     robin, no stickiness, health checked on /readyz (every request of a
//     session may land on either);
//   - reference: its one Node process as the only backend. socket.io 0.9
//     keeps sessions in the process's memory, so more than one process would
//     need sticky sessions; both targets pay the same extra hop.

// errNoHAProxy is returned by startLB when haproxy is not installed.
var errNoHAProxy = errors.New("haproxy is not installed (apt-get install haproxy)")

// startLB starts, once, each cluster target's second gateway and haproxy
// and the reference's haproxy. What it started is stopped by stopAll, also
// when it fails.
func (s *servers) startLB(ctx context.Context) error {
	if s.lbStarted {
		return nil
	}
	if _, err := exec.LookPath(s.paths.HAProxy); err != nil {
		return errNoHAProxy
	}
	shipped, err := os.ReadFile(s.paths.LBConfig)
	if err != nil {
		return fmt.Errorf("load balancer configuration: %w", err)
	}
	for _, c := range s.clusters() {
		if err := c.startLB(ctx, s.paths.HAProxy, shipped); err != nil {
			return fmt.Errorf("%s: %w", c.target, err)
		}
	}
	reference := []haproxycfg.Server{{Name: "reference", Addr: strings.TrimPrefix(s.referenceURL, "http://")}}
	if s.referenceLB, s.referenceLBURL, err = startHAProxy(ctx, s.logDir, "haproxy-reference", s.paths.HAProxy, shipped, reference); err != nil {
		return err
	}
	s.lbStarted = true
	return nil
}

// startLB starts the cluster's second gateway and its haproxy in front of
// both gateways.
func (c *cluster) startLB(ctx context.Context, haproxy string, shipped []byte) error {
	port, err := freeport.Loopback()
	if err != nil {
		return err
	}
	admin, err := freeport.Loopback()
	if err != nil {
		return err
	}
	if c.gateway2, err = c.launchGateway(ctx, "gateway2", "bench-gw2", port, admin); err != nil {
		return err
	}
	backends := []haproxycfg.Server{
		{Name: "gw1", Addr: strings.TrimPrefix(c.gatewayURL, "http://"), CheckPort: c.gatewayAdmin},
		{Name: "gw2", Addr: fmt.Sprintf("127.0.0.1:%d", port), CheckPort: admin},
	}
	c.haproxy, c.lbURL, err = startHAProxy(ctx, c.logDir, "haproxy-cluster", haproxy, shipped, backends)
	return err
}

// startHAProxy runs haproxy with a configuration derived from the shipped
// one and waits until it accepts connections and its servers are up. The
// process is returned also on error, so that it can be stopped.
func startHAProxy(ctx context.Context, logDir, name, haproxy string, shipped []byte, servers []haproxycfg.Server) (*proc, string, error) {
	port, err := freeport.Loopback()
	if err != nil {
		return nil, "", err
	}
	bind := fmt.Sprintf("127.0.0.1:%d", port)
	path := filepath.Join(logDir, name+".cfg")
	if err := os.WriteFile(path, []byte(haproxycfg.Derive(shipped, bind, servers)), 0o644); err != nil {
		return nil, "", err
	}
	p, err := startProc(logDir, name, "", nil, nil, haproxy, "-db", "-f", path)
	if err != nil {
		return nil, "", err
	}
	err = waitFor(ctx, p, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", bind, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return p, "", err
	}
	// The servers start down until their first health check passes
	// (inter 1s, rise 1 in the shipped configuration).
	select {
	case <-time.After(1500 * time.Millisecond):
	case <-ctx.Done():
		return p, "", ctx.Err()
	}
	return p, "http://" + bind, nil
}
