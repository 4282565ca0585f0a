package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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

// A packet with invalid UTF-8 queued on a websocket is handed to its conn
// repaired, whether the writer writes it or the goroutine that queues it;
// each repair is counted.
func TestStreamRepairsPacketsOut(t *testing.T) {
	var logs bytes.Buffer
	g := logGateway(&logs)
	f := newFakeConn(t)
	s := g.newStreamConn("sid", TransportWebSocket, f, true)
	s.start([]string{"1::", "3:::" + badBytes}) // written by a writer goroutine
	f.waitWritten("1::", "3:::"+fixedBytes)
	waitWriterIdle(t, s)
	s.send("3:::" + badBytes) // written by this goroutine
	f.waitWritten("1::", "3:::"+fixedBytes, "3:::"+fixedBytes)
	if n := repairs(t, g, "out"); n != 2 {
		t.Errorf("invalid_utf8 out = %v, want 2", n)
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
