package gateway

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

const (
	badBytes   = "\xff\xfe\xc3\x28\xe2\x80"
	fixedBytes = "\ufffd\ufffd\ufffd(\ufffd" // as Node decodes badBytes
)

// logGateway is testGateway logging into buf.
func logGateway(buf *bytes.Buffer) *Gateway {
	g := testGateway(8)
	g.log = slog.New(slog.NewTextHandler(buf, nil))
	return g
}

// repairs returns the repairs counted in direction dir.
func repairs(t *testing.T, g *Gateway, dir string) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.metrics.InvalidUTF8.WithLabelValues(dir).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A packet with invalid UTF-8 queued on a websocket is written as a valid
// text frame, repaired, its length that of the repair; the repair is
// counted.
func TestStreamRepairsPacketsOut(t *testing.T) {
	var logs bytes.Buffer
	g := logGateway(&logs)
	server, client := net.Pipe()
	defer client.Close()
	s := g.newStreamConn("sid", TransportWebSocket, server)
	s.start([]string{"1::"})
	s.send("3:::" + badBytes)
	want := "\x81\x031::" + "\x81\x11" + "3:::" + fixedBytes
	got := make([]byte, 0, 64)
	buf := make([]byte, 64)
	for len(got) < len(want) {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("frames %q, want %q", got, want)
	}
	waitWriterIdle(t, s)
	if n := repairs(t, g, "out"); n != 1 {
		t.Errorf("invalid_utf8 out = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), `msg="invalid UTF-8 repaired" direction=out transport=websocket sid=sid bytes=10 repaired_bytes=17`) {
		t.Errorf("log: %s", logs.String())
	}
}

// Repairs are counted each, logged at most once per utf8LogEvery per
// direction; the next line says how many went unlogged.
func TestRepairLogIsRateLimited(t *testing.T) {
	var logs bytes.Buffer
	g := logGateway(&logs)
	for i := 0; i < 5; i++ {
		packets := []string{"3:::ok", "3:::" + badBytes}
		g.repairOut(packets, TransportXHRPolling, "sid")
		if packets[0] != "3:::ok" || packets[1] != "3:::"+fixedBytes {
			t.Fatalf("repaired packets %q", packets)
		}
		if b, repaired := g.repairIn([]byte("5:::"+badBytes), TransportXHRPolling, "sid"); !repaired || string(b) != "5:::"+fixedBytes {
			t.Fatalf("repairIn = %q, %v", b, repaired)
		}
	}
	for _, dir := range []string{"in", "out"} {
		if n := repairs(t, g, dir); n != 5 {
			t.Errorf("invalid_utf8 %s = %v, want 5", dir, n)
		}
		if n := strings.Count(logs.String(), "direction="+dir+" "); n != 1 {
			t.Errorf("%d log lines for direction %s, want 1:\n%s", n, dir, logs.String())
		}
	}
	// The limiter itself, on a clock of its own.
	var l rateLog
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at       time.Duration
		ok       bool
		unlogged int64
	}{{0, true, 0}, {time.Second, false, 0}, {9 * time.Second, false, 0}, {10 * time.Second, true, 2}, {11 * time.Second, false, 0}, {time.Minute, true, 1}}
	for _, st := range steps {
		if ok, unlogged := l.allow(t0.Add(st.at), 10*time.Second); ok != st.ok || unlogged != st.unlogged {
			t.Errorf("at %v: allow = %v, %d; want %v, %d", st.at, ok, unlogged, st.ok, st.unlogged)
		}
	}
}

// Valid input, nearly all of it, is checked without allocating.
func TestRepairValidAllocatesNothing(t *testing.T) {
	g := testGateway(8)
	packets := []string{"1::", `5:::{"name":"chat","args":["é€😀"]}`, "3:::plain"}
	frame := []byte(`5:1+::{"name":"echo","args":["é€😀"]}`)
	allocs := testing.AllocsPerRun(100, func() {
		g.repairOut(packets, TransportWebSocket, "sid")
		if _, repaired := g.repairIn(frame, TransportWebSocket, "sid"); repaired {
			t.Fatal("valid frame repaired")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for valid packets", allocs)
	}
}

// The check on a batch of valid packets on its way to a client: 0
// allocations.
func BenchmarkRepairOutValid(b *testing.B) {
	g := testGateway(8)
	packets := []string{`6:::12+[1,"two",{"three":3}]`, `5:::{"name":"chat","args":["hello é€😀 world"]}`, "2::"}
	b.ReportAllocs()
	for b.Loop() {
		g.repairOut(packets, TransportWebSocket, "sid")
	}
}
