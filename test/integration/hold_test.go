package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Many idle websockets held across several short heartbeat rounds, from
// several local addresses: none is dropped, every client gets (and
// answers) heartbeats in every round, and the gateway's connections gauge
// counts exactly the clients, then none once they left.
func TestWebSocketHeartbeatsHeldAtScale(t *testing.T) {
	const clients = 300
	c := newCluster(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := l.Addr().String()
	l.Close()
	g := c.gateway("a", "-admin-addr", admin, "-heartbeat-interval", "300ms", "-heartbeat-timeout", "1500ms",
		"-close-timeout", "3s", "-polling-duration", "1s", "-max-handshake-rate", "0")
	admin = g.logged(regexp.MustCompile(`msg="admin listening" addr=(\S+)`))
	type result struct {
		r   holdResult
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := exec.Command(binary(t, "siobench"), "-url", "http://"+g.addr, "-scenario", "connect",
			"-clients", strconv.Itoa(clients), "-concurrency", "50", "-hold", "3s",
			"-source-ips", "127.0.0.1-127.0.0.3", "-pid", strconv.Itoa(g.cmd.Process.Pid), "-json").Output()
		var r holdResult
		if err == nil {
			err = json.Unmarshal(out, &r)
		}
		done <- result{r, out, err}
	}()
	// While held, the gauge counts every client, and never more.
	waitUntil(t, "the connections gauge reaches "+strconv.Itoa(clients), 20*time.Second, func() error {
		n := connectionsGauge(t, admin)
		if n > clients {
			t.Fatalf("connections gauge %d with %d clients", n, clients)
		}
		if n != clients {
			return fmt.Errorf("connections gauge %d", n)
		}
		return nil
	})
	res := <-done
	if res.err != nil {
		t.Fatalf("siobench: %v\n%s", res.err, res.out)
	}
	r := res.r
	t.Logf("%s", res.out)
	if r.Connected != clients || r.Errors != 0 || r.Dropped != 0 || r.HeldSeconds < 2.9 {
		t.Fatalf("held: %+v", r)
	}
	// Three seconds at a 300ms interval: about ten rounds; every client got
	// most of them (answering each: a silent one is dropped after 1.5s).
	if r.MinHeartbeats < 6 {
		t.Fatalf("a client got only %d heartbeats in 3s at a 300ms interval: %+v", r.MinHeartbeats, r)
	}
	waitUntil(t, "the connections gauge returns to 0 after every client left", 10*time.Second, func() error {
		if n := connectionsGauge(t, admin); n != 0 {
			return fmt.Errorf("connections gauge %d", n)
		}
		return nil
	})
}

// holdResult is siobench's -json summary of a connect scenario with -hold.
type holdResult struct {
	Connected     int
	Errors        int64
	HeldSeconds   float64 `json:"held_s"`
	Dropped       int64
	Heartbeats    int64
	MinHeartbeats int64 `json:"min_heartbeats"`
}

// connectionsGauge reads the gateway's websocket connections gauge.
func connectionsGauge(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `realtime_gateway_connections{transport="websocket"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	return 0
}
