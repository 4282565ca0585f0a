package haproxycfg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The derived configuration is the shipped one with its bind and server
// lines replaced; haproxy accepts it.
func TestDerive(t *testing.T) {
	shipped, err := os.ReadFile("../../deploy/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Derive(shipped, "127.0.0.1:1234", []Server{
		{Name: "gw1", Addr: "127.0.0.1:1001", CheckPort: 2001},
		{Name: "reference", Addr: "127.0.0.1:1002"},
	})
	for _, want := range []string{
		"    bind 127.0.0.1:1234\n",
		"    server gw1 127.0.0.1:1001 check port 2001\n",
		"    server reference 127.0.0.1:1002 no-check\n",
		"balance roundrobin",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("missing %q in:\n%s", want, cfg)
		}
	}
	// Both backends (the ready gateways, and those up for failing open)
	// list the servers, once each.
	for _, backend := range []string{"\nbackend gateways\n", "\nbackend gateways_up\n"} {
		_, rest, ok := strings.Cut(cfg, backend)
		if !ok {
			t.Fatalf("no %q in:\n%s", backend, cfg)
		}
		rest, _, _ = strings.Cut(rest, "\nbackend ")
		if n := strings.Count(rest, "    server gw1 127.0.0.1:1001 check port 2001\n"); n != 1 {
			t.Errorf("%q lists gw1 %d times:\n%s", backend, n, rest)
		}
	}
	if strings.Contains(cfg, ":8080") || strings.Contains(cfg, ":8001") {
		t.Errorf("a shipped bind or server line is left:\n%s", cfg)
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy is not installed")
		}
		t.Skip("haproxy is not installed")
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}
