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
//   - cluster: two gateways in plain round robin, no stickiness, health
//     checked on /readyz (every request of a session may land on either);
//   - reference: its one Node process as the only backend. socket.io 0.9
//     keeps sessions in the process's memory, so more than one process would
//     need sticky sessions; both targets pay the same extra hop.

// balancers is the load balancers and the cluster's second gateway.
type balancers struct {
	gateway2, cluster, reference *proc
	clusterURL, referenceURL     string
}

// procs returns the processes started (none for a nil balancers).
func (b *balancers) procs() []*proc {
	if b == nil {
		return nil
	}
	return []*proc{b.gateway2, b.cluster, b.reference}
}

// errNoHAProxy is returned by startLB when haproxy is not installed.
var errNoHAProxy = errors.New("haproxy is not installed (apt-get install haproxy)")

// startLB starts the second gateway and both load balancers, once.
func (s *servers) startLB(ctx context.Context) error {
	if s.lb != nil {
		return nil
	}
	if _, err := exec.LookPath(s.paths.HAProxy); err != nil {
		return errNoHAProxy
	}
	shipped, err := os.ReadFile(s.paths.LBConfig)
	if err != nil {
		return fmt.Errorf("load balancer configuration: %w", err)
	}
	b := &balancers{}
	started := false
	defer func() {
		if !started {
			for _, p := range b.procs() {
				if p != nil {
					p.stop(5 * time.Second)
				}
			}
		}
	}()
	port, err := freeport.Loopback()
	if err != nil {
		return err
	}
	admin, err := freeport.Loopback()
	if err != nil {
		return err
	}
	if b.gateway2, err = s.launchGateway(ctx, "gateway2", "bench-gw2", port, admin); err != nil {
		return err
	}
	cluster := []haproxycfg.Server{
		{Name: "gw1", Addr: strings.TrimPrefix(s.gatewayURL, "http://"), CheckPort: s.gatewayAdmin},
		{Name: "gw2", Addr: fmt.Sprintf("127.0.0.1:%d", port), CheckPort: admin},
	}
	if b.cluster, b.clusterURL, err = s.startHAProxy(ctx, "haproxy-cluster", shipped, cluster); err != nil {
		return err
	}
	reference := []haproxycfg.Server{{Name: "reference", Addr: strings.TrimPrefix(s.referenceURL, "http://")}}
	if b.reference, b.referenceURL, err = s.startHAProxy(ctx, "haproxy-reference", shipped, reference); err != nil {
		return err
	}
	started = true
	s.lb = b
	return nil
}

// startHAProxy runs haproxy with a configuration derived from the shipped
// one and waits until it accepts connections and its servers are up.
func (s *servers) startHAProxy(ctx context.Context, name string, shipped []byte, servers []haproxycfg.Server) (*proc, string, error) {
	port, err := freeport.Loopback()
	if err != nil {
		return nil, "", err
	}
	bind := fmt.Sprintf("127.0.0.1:%d", port)
	path := filepath.Join(s.logDir, name+".cfg")
	if err := os.WriteFile(path, []byte(haproxycfg.Derive(shipped, bind, servers)), 0o644); err != nil {
		return nil, "", err
	}
	p, err := startProc(s.logDir, name, "", nil, nil, s.paths.HAProxy, "-db", "-f", path)
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
