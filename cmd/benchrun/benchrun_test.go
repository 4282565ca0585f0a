package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1, 1, 100, 1, 1}, 1},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Median modified its input: %v", in)
			}
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(10, 4); got != 2.5 {
		t.Errorf("Ratio(10, 4) = %v", got)
	}
	for _, tc := range [][2]float64{{1, 0}, {0, 0}, {math.NaN(), 1}, {1, math.NaN()}} {
		if got := Ratio(tc[0], tc[1]); !math.IsNaN(got) {
			t.Errorf("Ratio(%v, %v) = %v, want NaN", tc[0], tc[1], got)
		}
	}
	if !Better(HigherBetter, 1.1) || Better(HigherBetter, 0.9) || !Better(LowerBetter, 0.9) || Better(LowerBetter, 1.1) || Better(LowerBetter, math.NaN()) {
		t.Error("Better disagrees with the direction")
	}
}

func TestTargetCheck(t *testing.T) {
	for _, tc := range []struct {
		target         Target
		cluster, ratio float64
		want           Verdict
	}{
		{Target{Kind: RatioAtLeast, Limit: 1}, 9000, 1.0, Met},
		{Target{Kind: RatioAtLeast, Limit: 1}, 9000, 0.99, Missed},
		{Target{Kind: RatioAtMost, Limit: 2}, 30, 2.0, Met},
		{Target{Kind: RatioAtMost, Limit: 2}, 30, 2.01, Missed},
		{Target{Kind: RatioAtMost, Limit: 1}, 30, math.NaN(), NoData},
		{Target{Kind: ClusterAtMost, Limit: 8}, 7.9, 0.1, Met},
		{Target{Kind: ClusterAtMost, Limit: 8}, 37, 0.5, Missed},
		{Target{Kind: ClusterAtMost, Limit: 8}, math.NaN(), math.NaN(), NoData},
		{Target{}, 1, 1, NoData},
	} {
		if got := tc.target.Check(tc.cluster, tc.ratio); got != tc.want {
			t.Errorf("%s.Check(%v, %v) = %s, want %s", tc.target, tc.cluster, tc.ratio, got, tc.want)
		}
	}
	if s := (Target{Kind: ClusterAtMost, Limit: 8, Unit: "KiB"}).String(); s != "cluster ≤ 8 KiB" {
		t.Errorf("String = %q", s)
	}
}

// fakeReport has two runs per target of echo, one failed run, and a skipped
// scenario.
func fakeReport() *Report {
	var echo, connect, big Scenario
	for _, s := range Scenarios() {
		switch s.Name {
		case "echo":
			echo = s
		case "connect":
			connect = s
		case "broadcast-10k":
			big = s
		}
	}
	res := func(ops, p99 float64) *Result {
		return &Result{Scenario: "echo", Clients: 100, Connected: 100, OpsPerS: ops, P50ms: p99 / 3, P99ms: p99, MaxMs: p99 * 2}
	}
	return &Report{
		Runs: 2, BigRuns: 1, Duration: 5 * time.Second, Command: "make bench",
		Started: time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC), Finished: time.Date(2025, 1, 2, 3, 14, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", Go: "go1.26", Node: "v20", Redis: "7.0", Files: 20000},
		Scenarios: []*ScenarioReport{
			{Scenario: echo, Clients: 100, Args: echo.Args(100, 5*time.Second), Runs: []RunRecord{
				{Target: targetCluster, Index: 1, Result: res(9000, 30)},
				{Target: targetReference, Index: 1, Result: res(10000, 40)},
				{Target: targetCluster, Index: 2, Result: res(11000, 50)},
				{Target: targetReference, Index: 2, Result: res(10000, 10)},
			}},
			{Scenario: connect, Clients: 5000, Args: connect.Args(5000, 0), Runs: []RunRecord{
				{Target: targetCluster, Index: 1, Result: &Result{Clients: 5000, Connected: 5000, ConnectsPerS: 400, RSSPerConnKB: 6}},
				{Target: targetReference, Index: 1, Err: "siobench: exit status 1: boom | bang"},
			}},
			{Scenario: big, Clients: 10001, Skipped: "needs an open-file limit of 11025"},
		},
		Codec:    "BenchmarkDecode-2   1000   1234 ns/op   0 B/op   0 allocs/op",
		CodecCmd: "go test -run '^$' -bench . -benchmem ./pkg/protocol",
	}
}

func TestRows(t *testing.T) {
	rows := Rows(fakeReport())
	find := func(scenario, metric string) Row {
		for _, r := range rows {
			if r.Scenario.Scenario.Name == scenario && r.Metric.Name == metric {
				return r
			}
		}
		t.Fatalf("no row %s %s", scenario, metric)
		return Row{}
	}
	acks := find("echo", "acks/s")
	if acks.Cluster != 10000 || acks.Reference != 10000 || acks.Ratio != 1 || acks.Verdict != Met {
		t.Errorf("acks/s row: %+v", acks)
	}
	p99 := find("echo", "RTT p99 (ms)")
	if p99.Cluster != 40 || p99.Reference != 25 || p99.Ratio != 1.6 || p99.Verdict != Met {
		t.Errorf("p99 row: %+v", p99)
	}
	rss := find("connect", "server RSS per connection (KiB)")
	if rss.Cluster != 6 || !math.IsNaN(rss.Reference) || rss.NRef != 0 || rss.Verdict != Met {
		t.Errorf("rss row: %+v", rss)
	}
	for _, r := range rows {
		if r.Scenario.Scenario.Name == "broadcast-10k" {
			t.Errorf("skipped scenario has a row: %+v", r)
		}
	}
}

func TestRenderMarkdown(t *testing.T) {
	md := RenderMarkdown(fakeReport(), analysisPlaceholder, "bench/ratios.svg")
	for _, want := range []string{
		"# Benchmarks",
		"make bench",
		"| CPU model | Test CPU |",
		"| **echo, websocket, closed loop** (100 clients) | acks/s | higher | 10000 | 10000 | 1.00× | ratio ≥ 1 | ✅ met |",
		"| RTT p99 (ms) | lower | 40.00 | 25.00 | 1.60× | ratio ≤ 2 | ✅ met |",
		"| server RSS per connection (KiB) | lower | 6.00 (1 of 2 runs) | — | — | cluster ≤ 8 KiB | ✅ met |",
		"skipped: needs an open-file limit of 11025",
		"failed: siobench: exit status 1: boom \\| bang",
		"![Ratio cluster / reference per scenario and metric](bench/ratios.svg)",
		"## Analysis\n\n" + analysisBegin + analysisPlaceholder + analysisEnd,
		"<details>",
		"-scenario echo -clients 100 -duration 5s",
		"BenchmarkDecode-2",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestAnalysisPreserved(t *testing.T) {
	if got := extractAnalysis(""); got != analysisPlaceholder {
		t.Errorf("empty file: %q", got)
	}
	if got := extractAnalysis("# old\n" + analysisBegin + "\nunterminated"); got != analysisPlaceholder {
		t.Errorf("unterminated: %q", got)
	}
	human := "\nThe p99 is bound by one Redis round trip per ack.\n\n- see pprof\n"
	old := RenderMarkdown(fakeReport(), human, "bench/ratios.svg")
	if got := extractAnalysis(old); got != human {
		t.Errorf("extractAnalysis = %q, want %q", got, human)
	}

	// writeReport keeps it across a regeneration, and renders the plot.
	dir := t.TempDir()
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	plotPath := filepath.Join(dir, "bench", "ratios.svg")
	if err := writeReport(out, plotPath, fakeReport()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), analysisBegin+human+analysisEnd) {
		t.Errorf("analysis lost:\n%s", b)
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil || !strings.Contains(string(svg), "<svg") {
		t.Errorf("plot not written as SVG: %v", err)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.runs != 5 || o.duration != 5*time.Second || o.out != "BENCHMARKS.md" || len(o.scenarios) != len(Scenarios())+1 ||
		o.plot != filepath.Join("bench", "ratios.svg") || !o.codec {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-quick", "-scenarios", "echo, connect"})
	if err != nil {
		t.Fatal(err)
	}
	if o.runs != 1 || o.duration != 2*time.Second || o.out == "BENCHMARKS.md" || len(o.scenarios) != 2 {
		t.Errorf("-quick: %+v", o)
	}
	os.RemoveAll(filepath.Dir(o.out))
	if _, err := parseFlags([]string{"-scenarios", "nope"}); err == nil {
		t.Error("unknown scenario accepted")
	}
}

func TestRatioTicks(t *testing.T) {
	ticks := ratioTicks{}.Ticks(0, 2.4)
	var got []string
	for _, tk := range ticks {
		got = append(got, tk.Label)
	}
	if strings.Join(got, " ") != "0 0.5 1 1.5 2" {
		t.Errorf("ticks = %v", got)
	}
}

func TestBusyNote(t *testing.T) {
	if n := busyNote("0.20 0.5 0.7", 2); n != "" {
		t.Errorf("idle machine: %q", n)
	}
	if n := busyNote("3.05 3.09 3.69", 2); !strings.Contains(n, "3.05 on 2 CPUs") {
		t.Errorf("busy machine: %q", n)
	}
	if n := busyNote("?", 2); n != "" {
		t.Errorf("unknown load: %q", n)
	}
}
