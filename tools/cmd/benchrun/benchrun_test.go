package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
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

// findRow returns the row of rows for scenario and metric, failing the test
// when there is none.
func findRow(t *testing.T, rows []Row, scenario, metric string) Row {
	t.Helper()
	for _, r := range rows {
		if r.Scenario.Scenario.Name == scenario && r.Metric.Name == metric {
			return r
		}
	}
	t.Fatalf("no row %s %s", scenario, metric)
	return Row{}
}

// wantContains reports each of want that text lacks, showing text.
func wantContains(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("lacks %q:\n%s", w, text)
		}
	}
}

func TestRows(t *testing.T) {
	rows := Rows(fakeReport())
	acks := findRow(t, rows, "echo", "acks/s")
	if acks.Cluster != 10000 || acks.Reference != 10000 || acks.Ratio != 1 || acks.Verdict != Met {
		t.Errorf("acks/s row: %+v", acks)
	}
	p99 := findRow(t, rows, "echo", "RTT p99 (ms)")
	if p99.Cluster != 40 || p99.Reference != 25 || p99.Ratio != 1.6 || p99.Verdict != Met {
		t.Errorf("p99 row: %+v", p99)
	}
	rss := findRow(t, rows, "connect", "server RSS per connection (KiB)")
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
	md := RenderMarkdown(fakeReport(), analysisPlaceholder, "bench/ratios.svg", "")
	wantContains(t, md,
		"# Benchmarks",
		"make bench",
		"| CPU model | Test CPU |",
		"| **echo, websocket, closed loop** (100 clients) | acks/s | higher | 10000 | 10000 | 1.00× | ratio ≥ 1 | ✅ met |",
		"| RTT p99 (ms) | lower | 40.00 | 25.00 | 1.60× | ratio ≤ 2 | ✅ met |",
		"| server RSS per connection (KiB) | lower | 6.00 (1 of 2 runs) | — | — | cluster ≤ 8 KiB | ✅ met |",
		"skipped: needs an open-file limit of 11025",
		"failed: siobench: exit status 1: boom \\| bang",
		"![Ratio cluster / reference per scenario and metric](bench/ratios.svg)",
		"## Analysis\n\n"+analysisBegin+analysisPlaceholder+analysisEnd,
		"<details>",
		"-scenario echo -clients 100 -duration 5s",
		"BenchmarkDecode-2",
	)
}

func TestAnalysisPreserved(t *testing.T) {
	if got := extractAnalysis(""); got != analysisPlaceholder {
		t.Errorf("empty file: %q", got)
	}
	if got := extractAnalysis("# old\n" + analysisBegin + "\nunterminated"); got != analysisPlaceholder {
		t.Errorf("unterminated: %q", got)
	}
	human := "\nThe p99 is bound by one Redis round trip per ack.\n\n- see pprof\n"
	old := RenderMarkdown(fakeReport(), human, "bench/ratios.svg", "")
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

// withBaseline adds to fakeReport a baseline target: echo runs whose acks/s
// median is acks and whose p99 median is 40, connect runs, and the baseline's
// description.
func withBaseline(rep *Report, acks float64) *Report {
	rep.Baseline = &Baseline{Rev: "main~3", Commit: "64b3d19", Subject: "pub/sub still", Bin: "/tmp/x/bin",
		Build: "git archive 64b3d19 | tar -x -C DIR/src && go -C DIR/src build -buildvcs=false -o DIR/bin/ ./cmd/gateway ./cmd/worker"}
	echo, connect := rep.Scenarios[0], rep.Scenarios[1]
	for i, p99 := range []float64{35, 45} {
		echo.Runs = append(echo.Runs, RunRecord{Target: targetBaseline, Index: i + 1,
			Result: &Result{Scenario: "echo", Clients: 100, Connected: 100, OpsPerS: acks, P50ms: 10, P99ms: p99, MaxMs: 90}})
	}
	connect.Runs = append(connect.Runs, RunRecord{Target: targetBaseline, Index: 1,
		Result: &Result{Clients: 5000, Connected: 5000, ConnectsPerS: 500, RSSPerConnKB: 8}})
	return rep
}

// The baseline's runs count for the baseline only: the cluster/reference
// columns stay as without it, and the ratios cluster/baseline (the
// median of each round's ratio) and the tolerances are computed.
func TestRowsBaseline(t *testing.T) {
	plain := Rows(fakeReport())
	rows := Rows(withBaseline(fakeReport(), 10500))
	if len(rows) != len(plain) {
		t.Fatalf("%d rows with a baseline, %d without", len(rows), len(plain))
	}
	for i := range rows {
		a, b := rows[i], plain[i]
		same := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
		if !same(a.Cluster, b.Cluster) || !same(a.Reference, b.Reference) || !same(a.Ratio, b.Ratio) || a.Verdict != b.Verdict {
			t.Errorf("%s %s: the baseline changed the cluster/reference row: %+v, was %+v", a.Scenario.Scenario.Name, a.Metric.Name, a, b)
		}
		if b.NBase != 0 || !math.IsNaN(b.Baseline) || b.BaseVerdict != "" {
			t.Errorf("%s %s: a baseline without one: %+v", b.Scenario.Scenario.Name, b.Metric.Name, b)
		}
	}
	acks := findRow(t, rows, "echo", "acks/s") // cluster 10000 (9000, 11000) against 10500
	if acks.Baseline != 10500 || acks.NBase != 2 || math.Abs(acks.BaseRatio-10000.0/10500) > 1e-12 || acks.BaseVerdict != Met {
		t.Errorf("acks/s against the baseline: %+v", acks)
	}
	// cluster 30, 50 against 35, 45, round by round: no tolerance
	p99 := findRow(t, rows, "echo", "RTT p99 (ms)")
	if p99.Baseline != 40 || math.Abs(p99.BaseRatio-(30.0/35+50.0/45)/2) > 1e-12 || p99.BaseVerdict != "" {
		t.Errorf("RTT p99 against the baseline: %+v", p99)
	}
	rss := findRow(t, rows, "connect", "server RSS per connection (KiB)")
	if rss.Baseline != 8 || rss.BaseRatio != 0.75 {
		t.Errorf("RSS against the baseline: %+v", rss)
	}
	// 10000 against 10600 is 5.7% lower: beyond the 5%.
	acks = Rows(withBaseline(fakeReport(), 10600))[0]
	if acks.Metric.Name != "acks/s" || acks.BaseVerdict != Missed {
		t.Errorf("acks/s 5.7%% below the baseline: %+v", acks)
	}
}

func TestRenderMarkdownBaseline(t *testing.T) {
	// Without a baseline nothing of it shows.
	if md := RenderMarkdown(fakeReport(), analysisPlaceholder, "bench/ratios.svg", ""); strings.Contains(strings.ToLower(md), "baseline") {
		t.Errorf("a report without a baseline mentions one:\n%s", md)
	}
	md := RenderMarkdown(withBaseline(fakeReport(), 10500), analysisPlaceholder, "bench/ratios.svg", "")
	wantContains(t, md,
		// the existing table is unchanged
		"| **echo, websocket, closed loop** (100 clients) | acks/s | higher | 10000 | 10000 | 1.00× | ratio ≥ 1 | ✅ met |",
		"in alternation (cluster, baseline, reference, cluster, …), 2 runs per target",
		"The third target, the **baseline**, is this cluster built from commit 64b3d19 (“pub/sub still”);",
		"The baseline (`-baseline main~3`): benchrun unpacked commit 64b3d19",
		"`git archive 64b3d19 | tar -x -C DIR/src && go -C DIR/src build -buildvcs=false -o DIR/bin/ ./cmd/gateway ./cmd/worker`",
		"## Against the baseline (64b3d19)\n",
		"| scenario | metric | better | cluster | baseline | ratio | change | tolerance | within |",
		"| **echo, websocket, closed loop** (100 clients) | acks/s | higher | 10000 | 10500 | 0.95× | −4.8% | ratio ≥ 0.95 | ✅ yes |",
		"| RTT p99 (ms) | lower | 40.00 | 40.00 | 0.98× | −1.6% |  |  |",
		"| server RSS per connection (KiB) | lower | 6.00 (1 of 2 runs) | 8.00 (1 of 2 runs) | 0.75× | −25.0% |  |  |",
		"| **broadcast to 10,000 room members** (10000 members + 1 sender, every 1s) | skipped: needs an open-file limit of 11025 |",
		"**Within tolerance of the baseline: yes.** within: echo acks/s 0.95×, −4.8% (cluster 10000, baseline 10500; may be at most 5% lower). Computed from the ratios in the table above (each the median of the rounds' ratios).",
		"| echo | baseline | 2 | 100/100 | 0 | 10500 |",
	)
	// -baseline-bin: named by the commit its build information gives.
	rep := withBaseline(fakeReport(), 10500)
	rep.Baseline = &Baseline{Bin: "/opt/old", Commit: "abc1234", Dirty: true}
	md = RenderMarkdown(rep, analysisPlaceholder, "bench/ratios.svg", "")
	wantContains(t, md,
		"The baseline (`-baseline-bin /opt/old`): the gateway and worker in that directory, built from commit abc1234 with uncommitted changes.",
		"## Against the baseline (abc1234, with uncommitted changes)\n",
	)
}

func TestBaselineVerdict(t *testing.T) {
	// A broadcast scenario whose p99 has a tolerance of 5% higher.
	var bc Scenario
	for _, s := range Scenarios() {
		if s.Name == "broadcast-1k" {
			bc = s
		}
	}
	broadcast := func(cluster, baseline float64) *ScenarioReport {
		sr := &ScenarioReport{Scenario: bc, Clients: 1001}
		for target, p99 := range map[string]float64{targetCluster: cluster, targetBaseline: baseline} {
			if !math.IsNaN(p99) {
				sr.Runs = append(sr.Runs, RunRecord{Target: target, Index: 1, Result: &Result{Scenario: "broadcast", Clients: 1001, Connected: 1001, P99ms: p99}})
			}
		}
		return sr
	}
	for _, tc := range []struct {
		name              string
		acks, p99, bp99   float64
		want              []string
		unwanted          []string
		broadcastScenario bool
	}{
		{name: "both within", acks: 10100, p99: 21, bp99: 20, broadcastScenario: true, want: []string{
			"**Within tolerance of the baseline: yes.** within: echo acks/s 0.99×, −1.0% (cluster 10000, baseline 10100; may be at most 5% lower); broadcast-1k latency p99 (ms) 1.05×, +5.0% (cluster 21.00, baseline 20.00; may be at most 5% higher).",
		}},
		{name: "p99 beyond", acks: 9000, p99: 22, bp99: 20, broadcastScenario: true, want: []string{
			"**Within tolerance of the baseline: no.** beyond: broadcast-1k latency p99 (ms) 1.10×, +10.0% (cluster 22.00, baseline 20.00; may be at most 5% higher). within: echo acks/s 1.11×, +11.1%",
		}},
		{name: "no baseline runs of broadcast", acks: 10000, p99: 22, bp99: math.NaN(), broadcastScenario: true, want: []string{
			"**Within tolerance of the baseline: not established.** within: echo acks/s 1.00×",
			"no data: broadcast-1k latency p99 (ms) —, — (cluster 22.00, baseline —; may be at most 5% higher).",
		}},
		{name: "echo only", acks: 10000, want: []string{"**Within tolerance of the baseline: yes.** within: echo acks/s 1.00×"}, unwanted: []string{"broadcast"}},
	} {
		rep := withBaseline(fakeReport(), tc.acks)
		if tc.broadcastScenario {
			rep.Scenarios = append(rep.Scenarios, broadcast(tc.p99, tc.bp99))
		}
		got := baselineVerdict(rep)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: verdict lacks %q:\n%s", tc.name, w, got)
			}
		}
		for _, u := range tc.unwanted {
			if strings.Contains(got, u) {
				t.Errorf("%s: verdict has %q:\n%s", tc.name, u, got)
			}
		}
	}
	// No scenario with a tolerance ran.
	rep := withBaseline(fakeReport(), 10000)
	rep.Scenarios = rep.Scenarios[1:]
	if got := baselineVerdict(rep); !strings.Contains(got, "not established.** No measure with a tolerance ran") {
		t.Errorf("without echo and broadcast: %s", got)
	}
}

func TestParseFlagsBaseline(t *testing.T) {
	o, err := parseFlags([]string{"-baseline", "64b3d19", "-scenarios", "echo,broadcast-1k"})
	if err != nil {
		t.Fatal(err)
	}
	if o.baselineRev != "64b3d19" || o.paths.BaselineBin != "" {
		t.Errorf("-baseline: %+v", o)
	}
	o, err = parseFlags([]string{"-baseline-bin", "/opt/old"})
	if err != nil {
		t.Fatal(err)
	}
	if o.baselineRev != "" || o.paths.BaselineBin != "/opt/old" {
		t.Errorf("-baseline-bin: %+v", o)
	}
	if o, err := parseFlags(nil); err != nil || o.baselineRev != "" || o.paths.BaselineBin != "" {
		t.Errorf("a baseline by default: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-baseline", "HEAD~1", "-baseline-bin", "/opt/old"}); err == nil {
		t.Error("-baseline with -baseline-bin accepted")
	}
}

// The echo scenario's ceiling: the same siobench arguments with -scenario
// ws-echo; the report gives its median and each target's share of it, and
// says nothing when it did not run; the ceiling does not enter the
// cluster/reference ratios.
func TestCeiling(t *testing.T) {
	args := []string{"-url", "u", "-json", "-scenario", "echo", "-clients", "100"}
	if got := ceilingArgs(args); !slices.Equal(got, []string{"-url", "u", "-json", "-scenario", "ws-echo", "-clients", "100"}) || args[4] != "echo" {
		t.Fatalf("ceilingArgs: %q (args now %q)", got, args)
	}
	rep := fakeReport()
	if got := renderCeiling(rep); got != "" {
		t.Fatalf("a ceiling without its runs: %q", got)
	}
	before := Rows(rep)[0]
	echo := rep.Scenarios[0]
	for i, ops := range []float64{50000, 30000, 40000} {
		echo.Runs = append(echo.Runs, RunRecord{Target: targetCeiling, Index: i + 1, Result: &Result{OpsPerS: ops, P99ms: float64(i + 1)}})
	}
	got := renderCeiling(rep)
	// Ceiling median 40000 (p99 2); cluster median 10000 (9000, 11000): 25%;
	// reference 10000: 25%.
	for _, want := range []string{"40000 echoes/s, p99 2.00 ms (median of 3 runs)", "cluster 25%, reference 25%", "same 100 clients"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in %q", want, got)
		}
	}
	if after := Rows(rep)[0]; after.Cluster != before.Cluster || after.Reference != before.Reference || after.Ratio != before.Ratio {
		t.Errorf("the ceiling's runs changed the echo row: %+v, was %+v", after, before)
	}
}
