package cli

import (
	"net"
	"strconv"
	"testing"
)

// The default admin ports differ from each other and from the client port,
// and stay clear of the Prometheus exporter range (9100-9999, node_exporter
// first) and of Prometheus, Pushgateway and Alertmanager (9090-9094).
func TestDefaultAdminPortsAvoidExporters(t *testing.T) {
	ports := map[string]int{}
	for name, addr := range map[string]string{"gateway": DefaultGatewayAdminAddr, "worker": DefaultWorkerAdminAddr} {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s admin address %q: %v", name, addr, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("%s admin port %q: %v", name, p, err)
		}
		if port >= 9090 && port <= 9999 {
			t.Errorf("%s admin port %d is in the Prometheus ecosystem's allocations (9090-9999)", name, port)
		}
		if port == 8000 {
			t.Errorf("%s admin port %d is the gateway's client port", name, port)
		}
		ports[name] = port
	}
	if ports["gateway"] == ports["worker"] {
		t.Errorf("the gateway and the worker share the default admin port %d", ports["gateway"])
	}
}
