// Package haproxycfg derives haproxy configurations from the one the
// project ships (deploy/haproxy/haproxy.cfg) for processes started on free
// loopback ports: the integration tests and the benchmark put haproxy in
// front of gateways they start, with the shipped timeouts, retries and
// health checks.
package haproxycfg

import (
	"fmt"
	"strings"
)

// Server is one backend server.
type Server struct {
	Name string
	Addr string // host:port the balancer forwards to
	// CheckPort is the port of the server's /readyz health check (the
	// gateway's admin listener); 0 means the server is not checked.
	CheckPort int
}

// Derive returns the shipped configuration with its bind line listening on
// bind and the server lines of each backend replaced by servers, where the
// backend's first server line was (the shipped file lists the same gateways
// in two backends: the ready ones, and the ones that are up).
func Derive(shipped []byte, bind string, servers []Server) string {
	var out []string
	placed := false
	for _, line := range strings.Split(string(shipped), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "backend "):
			placed = false
			out = append(out, line)
		case strings.HasPrefix(trimmed, "bind "):
			out = append(out, "    bind "+bind)
		case strings.HasPrefix(trimmed, "server "):
			if placed {
				continue
			}
			placed = true
			for _, sv := range servers {
				if sv.CheckPort > 0 {
					out = append(out, fmt.Sprintf("    server %s %s check port %d", sv.Name, sv.Addr, sv.CheckPort))
				} else {
					out = append(out, fmt.Sprintf("    server %s %s no-check", sv.Name, sv.Addr))
				}
			}
		default:
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
