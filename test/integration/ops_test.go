package integration

import (
	"context"
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
// /readyz proves the path (pub/sub probe, consumer progress), and a
// draining gateway turns unready.
func TestMetricsAndReadiness(t *testing.T) {
	c := newCluster(t)
	g := c.gateway("a", "-admin-addr", "127.0.0.1:0", "-drain-delay", "3s")
	gAdmin := "http://" + g.logged(adminRE)
	w := c.worker("w1", "echo", "-admin-addr", "127.0.0.1:0")
	wAdmin := "http://" + w.logged(adminRE)

	for _, url := range []string{gAdmin, wAdmin} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, body, _ := get(t, url+"/readyz")
			if status == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz: %d %q", url, status, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if status, _, _ := get(t, url+"/healthz"); status != 200 {
			t.Fatalf("%s/healthz: %d", url, status)
		}
		if status, body, _ := get(t, url+"/debug/pprof/"); status != 200 || !strings.Contains(body, "goroutine") {
			t.Fatalf("%s/debug/pprof/: %d", url, status)
		}
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
	for settle := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
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
		if len(wrong) == 0 {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("gateway metrics after traffic:\n%s", strings.Join(wrong, "\n"))
		}
	}
	// A polling client's packets wait in its mailbox: their delivery is
	// timed from the routing script to the poll answer's write.
	pc := dial(t, "xhr-polling", urls(g))
	if _, err := pc.EmitAck(ctx, "", "echo", "polled"); err != nil {
		t.Fatal(err)
	}
	// A handshake that never connects a transport.
	handshake(t, g)
	// The cluster's session counts are refreshed every reaper tick.
	until := time.Now().Add(5 * time.Second)
	for metric(gm, `realtime_cluster_sessions{state="streaming"}`) != 1 ||
		metric(gm, `realtime_cluster_sessions{state="polling"}`) != 1 ||
		metric(gm, `realtime_cluster_sessions{state="handshaken"}`) != 1 {
		if time.Now().After(until) {
			t.Fatalf("sessions by state:\n%s", grep(gm, "realtime_cluster_sessions"))
		}
		time.Sleep(200 * time.Millisecond)
		_, gm, _ = get(t, gAdmin+"/metrics")
	}
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
	deadline := time.Now().Add(2 * time.Second)
	for {
		status, _, _ := get(t, gAdmin+"/readyz")
		if status == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a draining gateway stayed ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := cl.EmitAck(ctx, "", "echo", "still served"); err != nil {
		t.Fatalf("the drain delay does not serve: %v", err)
	}
	_ = cl.Send(ctx, protocol.Packet{Type: protocol.Heartbeat})
}

// Admission control: beyond the handshake rate or the connection count,
// handshakes get 503 at once, counted by reason.
func TestAdmissionControl(t *testing.T) {
	c := newCluster(t)
	g := c.gateway("a", "-max-handshake-rate", "5", "-max-connections", "1", "-admin-addr", "127.0.0.1:0")
	admin := "http://" + g.logged(adminRE)
	ok, refused := 0, 0
	for i := 0; i < 20; i++ {
		start := time.Now()
		status, body, _ := get(t, g.url("/socket.io/1/?t=1"))
		switch {
		case status == 200:
			ok++
		case status == 503 && strings.Contains(body, "over capacity"):
			refused++
			if d := time.Since(start); d > time.Second {
				t.Errorf("a refusal took %v", d)
			}
		default:
			t.Fatalf("handshake: %d %q", status, body)
		}
	}
	if ok < 5 || ok > 7 || refused == 0 {
		t.Fatalf("%d admitted, %d refused; want about 5 admitted", ok, refused)
	}
	time.Sleep(time.Second) // the bucket refills
	sid := handshake(t, g)
	ws := dialWS(t, g, sid)
	readWS(t, ws)
	if status, body, _ := get(t, g.url("/socket.io/1/?t=2")); status != 503 || !strings.Contains(body, "over capacity") {
		t.Fatalf("handshake at the connection limit: %d %q", status, body)
	}
	_, m, _ := get(t, admin+"/metrics")
	if metric(m, `realtime_gateway_handshakes_total{result="over_rate"}`) != float64(refused) ||
		metric(m, `realtime_gateway_handshakes_total{result="over_connections"}`) != 1 {
		t.Fatalf("refusals not counted:\n%s", grep(m, "handshakes_total"))
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
