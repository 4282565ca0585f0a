package integration

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
)

// benchResult is siobench's -json summary.
type benchResult struct {
	Connected    int
	Errors       int64
	Ops          int64
	Missing      int64
	P99ms        float64 `json:"p99_ms"`
	RSSPerConnKB float64 `json:"rss_per_conn_kib"`
}

func siobench(t *testing.T, args ...string) benchResult {
	t.Helper()
	out, err := exec.Command(binary(t, "siobench"), append(args, "-json")...).Output()
	if err != nil {
		t.Fatalf("siobench %v: %v\n%s", args, err, out)
	}
	var r benchResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("siobench output %q: %v", out, err)
	}
	return r
}

// The load tool runs each scenario, bounded, against this cluster and the
// echo scenario against the reference server.
func TestSiobenchSmoke(t *testing.T) {
	c := newCluster(t)
	g := c.gateway("a")
	c.worker("w1", "echo")
	url := "http://" + g.addr
	for _, transport := range []string{"websocket", "xhr-polling"} {
		r := siobench(t, "-url", url, "-transport", transport, "-scenario", "echo", "-clients", "5", "-duration", "1s")
		if r.Connected != 5 || r.Errors != 0 || r.Ops < 10 || r.P99ms <= 0 {
			t.Errorf("echo over %s: %+v", transport, r)
		}
	}
	r := siobench(t, "-url", url, "-scenario", "broadcast", "-clients", "6", "-duration", "1s", "-interval", "50ms")
	if r.Connected != 6 || r.Ops < 20 || r.Missing != 0 {
		t.Errorf("broadcast: %+v", r)
	}
	r = siobench(t, "-url", url, "-scenario", "connect", "-clients", "50", "-pid", strconv.Itoa(g.cmd.Process.Pid))
	if r.Connected != 50 || r.Errors != 0 {
		t.Errorf("connect: %+v", r)
	}
	if ref := reference(t); ref != "" {
		r := siobench(t, "-url", ref, "-scenario", "echo", "-clients", "5", "-duration", "1s")
		if r.Connected != 5 || r.Errors != 0 || r.Ops < 10 {
			t.Errorf("echo against the reference: %+v", r)
		}
	}
}
