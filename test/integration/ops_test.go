package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/protocol"
)

// metric returns the value of one sample ("name{labels}") from a
// Prometheus text exposition, or -1 when it is absent.
func metric(text, sample string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// The admin listeners after real traffic: the numbers moved as they should,
// /readyz proves the path (route stream probe, consumer progress), and a
// draining gateway turns unready.
func TestMetricsAndReadiness(t *testing.T) {
	c := newCluster(t)
	g := c.gateway("a", "-admin-addr", "127.0.0.1:0", "-drain-delay", "3s", "-pprof")
	gAdmin := "http://" + g.logged(adminRE)
	w := c.worker("w1", "echo", "-admin-addr", "127.0.0.1:0")
	wAdmin := "http://" + w.logged(adminRE)

	for _, url := range []string{gAdmin, wAdmin} {
		waitUntil(t, url+"/readyz answers 200", 10*time.Second, func() error {
			if status, body, _ := get(t, url+"/readyz"); status != 200 {
				return fmt.Errorf("%d %q", status, body)
			}
			return nil
		})
		if status, _, _ := get(t, url+"/healthz"); status != 200 {
			t.Fatalf("%s/healthz: %d", url, status)
		}
	}
	// The profiler only where -pprof asks for it: the gateway, not the worker.
	if status, body, _ := get(t, gAdmin+"/debug/pprof/"); status != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("gateway -pprof: /debug/pprof/: %d", status)
	}
	if status, _, _ := get(t, wAdmin+"/debug/pprof/"); status != 404 {
		t.Fatalf("worker without -pprof: /debug/pprof/: %d, want 404", status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := dial(t, "websocket", urls(g))
	if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := cl.EmitAck(ctx, "", "echo", i); err != nil {
			t.Fatal(err)
		}
	}
	get(t, g.url("/socket.io/1/nonsense-transport/x"))

	// A packet is counted once written: the client may read the last ack
	// a moment before the counter moves, so scrape until the numbers settle.
	want := map[string]float64{
		`realtime_gateway_handshakes_total{result="ok"}`:              1,
		`realtime_gateway_connections{transport="websocket"}`:         1,
		`realtime_gateway_packets_in_total{type="event"}`:             3,
		`realtime_gateway_rejected_total{reason="unknown_transport"}`: 1,
		`realtime_gateway_route_messages_total{op="D"}`:               4, // welcome and three acks
		`realtime_gateway_packets_out_total{type="connect"}`:          1,
		`realtime_gateway_packets_out_total{type="event"}`:            1, // welcome
		`realtime_gateway_packets_out_total{type="ack"}`:              3,
	}
	var gm string
	waitUntil(t, "gateway metrics after traffic", 3*time.Second, func() error {
		_, gm, _ = get(t, gAdmin+"/metrics")
		var wrong []string
		for sample, v := range want {
			if got := metric(gm, sample); got != v {
				wrong = append(wrong, fmt.Sprintf("%s = %v, want %v", sample, got, v))
			}
		}
		// Each write of a routed packet is timed (its oldest packet).
		if got := metric(gm, `realtime_gateway_delivery_seconds_count{route="direct"}`); got < 4 {
			wrong = append(wrong, fmt.Sprintf("direct deliveries timed: %v, want at least 4", got))
		}
		if len(wrong) > 0 {
			return errors.New(strings.Join(wrong, "\n"))
		}
		return nil
	})
	// A polling client's packets wait in its mailbox: their delivery is
	// timed from the routing script to the poll answer's write.
	pc := dial(t, "xhr-polling", urls(g))
	if _, err := pc.EmitAck(ctx, "", "echo", "polled"); err != nil {
		t.Fatal(err)
	}
	// A handshake that never connects a transport.
	handshake(t, g)
	// The cluster's session counts are refreshed every reaper tick.
	waitUntil(t, "one session in each state", 5*time.Second, func() error {
		if metric(gm, `realtime_cluster_sessions{state="streaming"}`) != 1 ||
			metric(gm, `realtime_cluster_sessions{state="polling"}`) != 1 ||
			metric(gm, `realtime_cluster_sessions{state="handshaken"}`) != 1 {
			_, gm, _ = get(t, gAdmin+"/metrics")
			return fmt.Errorf("sessions by state:\n%s", grep(gm, "realtime_cluster_sessions"))
		}
		return nil
	})
	if metric(gm, `realtime_gateway_delivery_seconds_count{route="mailbox"}`) < 1 {
		t.Errorf("mailbox deliveries not timed:\n%s", grep(gm, "delivery_seconds_count"))
	}
	for _, name := range []string{"realtime_gateway_signal_publish_seconds_count", `realtime_gateway_packet_bytes_in_total{type="event"}`, "realtime_gateway_mailbox_depth_packets_count",
		`realtime_gateway_packet_bytes_out_total{type="ack"}`, "realtime_gateway_redis_rtt_seconds_count", "go_goroutines", "process_resident_memory_bytes"} {
		if metric(gm, name) <= 0 {
			t.Errorf("%s missing or zero", name)
		}
	}
	_, wm, _ := get(t, wAdmin+"/metrics")
	for sample, want := range map[string]float64{
		`realtime_worker_signals_total{kind="event",result="ok"}`:   4, // three echoes over websocket, one polled
		`realtime_worker_signals_total{kind="connect",result="ok"}`: 2,
		`realtime_worker_partitions_owned`:                          16,
	} {
		if got := metric(wm, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if !regexp.MustCompile(`realtime_worker_handler_seconds_count\{event="echo",kind="event"\} 4`).MatchString(wm) {
		t.Error("handler duration not observed for the events")
	}

	// Draining: unready at once, still serving during the delay.
	g.signal(syscall.SIGTERM)
	waitUntil(t, "a draining gateway is unready", 2*time.Second, func() error {
		if status, _, _ := get(t, gAdmin+"/readyz"); status != 503 {
			return fmt.Errorf("/readyz %d", status)
		}
		return nil
	})
	if _, err := cl.EmitAck(ctx, "", "echo", "still served"); err != nil {
		t.Fatalf("the drain delay does not serve: %v", err)
	}
	_ = cl.Send(ctx, protocol.Packet{Type: protocol.Heartbeat})
}

// Admission control (issue 11 item 2): handshakes over -max-handshake-rate
// are held until the rate admits them, within -handshake-hold; beyond that
// bound, or beyond -max-handshake-queue held at once, they get 503 at once
// with Retry-After and a body saying why; at -max-connections, 503 at once.
// At 2/s with bursts of 2, eight handshakes at once could be admitted at
// 0, 0, +0.5s, +1s, +1.5s, ...
func TestAdmissionControl(t *testing.T) {
	c := newCluster(t)
	t.Run("queue bound", func(t *testing.T) {
		g := c.gateway("q", "-max-handshake-rate", "2", "-max-handshake-queue", "2", "-admin-addr", "127.0.0.1:0")
		checkBurst(t, g, "queue_full", "too many handshakes waiting", 5*time.Second)
	})
	t.Run("hold bound", func(t *testing.T) {
		g := c.gateway("h", "-max-handshake-rate", "2", "-handshake-hold", "1100ms", "-max-connections", "1", "-admin-addr", "127.0.0.1:0")
		checkBurst(t, g, "over_rate", "handshake rate", 1100*time.Millisecond)
		// At the connection limit: 503 at once, not held.
		time.Sleep(time.Second) // the rate refills
		sid := handshake(t, g)
		ws := dialWS(t, g, sid)
		readWS(t, ws)
		start := time.Now()
		status, body, h := get(t, g.url("/socket.io/1/?t=2"))
		if status != 503 || !strings.Contains(body, "connection limit") || h.Get("Retry-After") == "" || time.Since(start) > 500*time.Millisecond {
			t.Fatalf("handshake at the connection limit: %d %q, Retry-After %q, after %v", status, body, h.Get("Retry-After"), time.Since(start))
		}
		_, m, _ := get(t, "http://"+g.logged(adminRE)+"/metrics")
		if metric(m, `realtime_gateway_handshakes_total{result="over_connections"}`) != 1 {
			t.Fatalf("refusal not counted:\n%s", grep(m, "handshakes_total"))
		}
	})
	// Draining: a handshake the rate admits at once is served (its session
	// is in Redis); one that would have to wait gets 503 at once.
	t.Run("draining", func(t *testing.T) {
		g := c.gateway("d", "-max-handshake-rate", "1", "-drain-delay", "3s", "-admin-addr", "127.0.0.1:0")
		admin := "http://" + g.logged(adminRE)
		g.signal(syscall.SIGTERM)
		g.logged(regexp.MustCompile(`msg="(draining): unready`))
		handshake(t, g)
		start := time.Now()
		status, body, h := get(t, g.url("/socket.io/1/?t=2"))
		if status != 503 || body != "handshake error: server shutting down, retry" || h.Get("Retry-After") == "" || time.Since(start) > 500*time.Millisecond {
			t.Fatalf("handshake over the rate while draining: %d %q, Retry-After %q, after %v", status, body, h.Get("Retry-After"), time.Since(start))
		}
		_, m, _ := get(t, admin+"/metrics")
		if metric(m, `realtime_gateway_handshakes_total{result="draining"}`) != 1 || metric(m, `realtime_gateway_handshakes_total{result="ok"}`) != 1 {
			t.Fatalf("metrics:\n%s", grep(m, "handshakes_total"))
		}
	})
}

// checkBurst sends eight handshakes at once to g (at 2/s, bursts of 2) and
// checks that about four are admitted, two of them after waiting (at most
// hold), and that the others are refused at once with 503, Retry-After and
// a body containing bodyPart, counted as result.
func checkBurst(t *testing.T, g *proc, result, bodyPart string, hold time.Duration) {
	t.Helper()
	admin := "http://" + g.logged(adminRE)
	rs := handshakeBurst(t, g, 8)
	ok, held, refused := 0, 0, 0
	var longest time.Duration
	for _, r := range rs {
		switch {
		case r.status == 200:
			ok++
			longest = max(longest, r.took)
			if r.took > 400*time.Millisecond {
				held++
			}
		case r.status == 503 && strings.Contains(r.body, bodyPart):
			refused++
			if n, err := strconv.Atoi(r.retryAfter); err != nil || n < 1 {
				t.Errorf("Retry-After %q", r.retryAfter)
			}
			if r.took > 500*time.Millisecond {
				t.Errorf("a refusal took %v: not at once", r.took)
			}
		default:
			t.Fatalf("handshake: %d %q after %v", r.status, r.body, r.took)
		}
	}
	t.Logf("%d admitted (%d after waiting, the longest %v), %d refused (%s)", ok, held, longest, refused, result)
	if ok < 4 || ok > 5 || held < 2 || longest > hold+500*time.Millisecond {
		t.Fatalf("%d admitted, %d of them held, the longest for %v; want 4 admitted, 2 held within %v", ok, held, longest, hold)
	}
	_, m, _ := get(t, admin+"/metrics")
	if metric(m, `realtime_gateway_handshakes_total{result="`+result+`"}`) != float64(refused) ||
		metric(m, `realtime_gateway_handshakes_total{result="ok"}`) != float64(ok) ||
		metric(m, `realtime_gateway_rejected_total{reason="handshake_`+result+`"}`) != float64(refused) ||
		metric(m, "realtime_gateway_handshakes_waiting") != 0 ||
		metric(m, "realtime_gateway_handshake_wait_seconds_count") < float64(held) {
		t.Fatalf("metrics after %d admitted (%d held), %d refused:\n%s\n%s", ok, held, refused, grep(m, "handshake"), grep(m, "rejected"))
	}
	// One warning line for the flood, not one per refusal.
	if n := strings.Count(g.logText(), `msg="handshakes refused`); n != 1 {
		t.Fatalf("%d warning lines for %d refusals of one kind", n, refused)
	}
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
