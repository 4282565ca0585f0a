package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeBridge has two runs per target with their costs, and a failed run.
func fakeBridge() *BridgeReport {
	run := func(target string, i int, acks, p99, gw, worker float64, gunicorn ...float64) RunRecord {
		costs := []ProcCost{
			{Process: "gateway", CPUMicros: gw, Reads: 1, Writes: 2, HasSyscalls: true},
			{Process: "worker", CPUMicros: worker, Reads: 0.5, Writes: 0.5, HasSyscalls: true},
			{Process: "redis", CPUMicros: 10, Reads: 1, Writes: 1, HasSyscalls: true},
		}
		for n, g := range gunicorn {
			costs = append(costs, ProcCost{Process: "gunicorn worker " + string(rune('1'+n)), CPUMicros: g, Reads: 3, Writes: 4, HasSyscalls: true})
		}
		costs = append(costs, ProcCost{Process: "siobench", CPUMicros: 5})
		return RunRecord{Target: target, Index: i, Costs: costs,
			Result: &Result{Clients: 20, Connected: 20, OpsPerS: acks, P50ms: p99 / 4, P99ms: p99, MaxMs: p99 * 2}}
	}
	return &BridgeReport{
		Clients: 20, Args: []string{"-json", "-scenario", "echo", "-clients", "20", "-duration", "2s"}, GunicornWorkers: 4,
		Command: "make build && bin/benchrun -scenarios bridge -runs 3",
		Started: time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 30, 20, 2, 0, 0, time.UTC),
		LoadBefore: "1.50 1.00 0.50", LoadAfter: "2.00 1.20 0.60",
		Runs: []RunRecord{
			run(targetGoEcho, 1, 10000, 10, 40, 20),
			run(targetBridge, 1, 1000, 50, 60, 100, 300, 200),
			run(targetGoEcho, 2, 12000, 12, 44, 22),
			run(targetBridge, 2, 1500, 70, 64, 110, 320, 240),
			{Target: targetBridge, Index: 3, Err: "siobench: exit status 1"},
		},
	}
}

func TestRenderBridge(t *testing.T) {
	md := renderBridge(fakeBridge(), 3)
	if !strings.HasPrefix(md, bridgeBegin+"\n") || !strings.HasSuffix(md, bridgeEnd+"\n") {
		t.Fatalf("no markers around the section:\n%s", md)
	}
	for _, want := range []string{
		// acks/s: Go median 11000, bridge (1000+1500)/2 = 1250 over 2 of 3 runs; 1250/11000.
		"| acks/s | higher | 11000 (2 of 3 runs) | 1250 (2 of 3 runs) | 0.11× |",
		// p99: 11 and 60 ms: 5.45×.
		"| RTT p99 (ms) | lower | 11.00 (2 of 3 runs) | 60.00 (2 of 3 runs) | 5.45× |",
		"| go-echo | gateway | 42.0 | 1.00 | 2.00 |",
		"| bridge | worker | 105.0 | 0.50 | 0.50 |",
		"| bridge | gunicorn worker 1 | 310.0 | 3.00 | 4.00 |",
		"| bridge | gunicorn worker 2 | 220.0 | 3.00 | 4.00 |",
		// Servers: 40+20+10 = 70 and 44+22+10 = 76, median 73; with siobench 78.
		"| go-echo | **servers** | **73.0** | | |",
		"| go-echo | **all, with siobench** | **78.0** | | |",
		// Servers: 60+100+10+300+200 = 670 and 64+110+10+320+240 = 744: 707.
		"| bridge | **servers** | **707.0** | | |",
		"| bridge | 3 | failed: siobench: exit status 1 |",
		"load average before / after: 1.50 1.00 0.50 / 2.00 1.20 0.60",
		"make build && bin/benchrun -scenarios bridge -runs 3",
		"gunicorn with 4 sync workers",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in:\n%s", want, md)
		}
	}
}

func TestSpliceBridge(t *testing.T) {
	section := renderBridge(fakeBridge(), 3)
	report := "# Benchmarks\n\n## Results\n\nold\n\n## Analysis\n\nmine\n"
	once := spliceBridge(report, section)
	if !strings.Contains(once, "old\n\n"+section+"\n## Analysis\n\nmine\n") {
		t.Fatalf("not inserted before the analysis:\n%s", once)
	}
	// Again with other numbers: replaced, not added.
	other := fakeBridge()
	other.LoadBefore = "0.10 0.10 0.10"
	twice := spliceBridge(once, renderBridge(other, 3))
	if strings.Count(twice, bridgeBegin) != 1 || !strings.Contains(twice, "0.10 0.10 0.10") || strings.Contains(twice, "1.50 1.00 0.50") {
		t.Fatalf("not replaced:\n%s", twice)
	}
	if got := extractSection(twice, bridgeBegin, bridgeEnd); got != strings.TrimSuffix(renderBridge(other, 3), "\n") {
		t.Errorf("extractSection = %q", got)
	}
	if got := spliceBridge("", section); !strings.Contains(got, section) {
		t.Errorf("into an empty report: %q", got)
	}
	if got := extractSection("# x\n"+bridgeBegin+"\nunterminated", bridgeBegin, bridgeEnd); got != "" {
		t.Errorf("extractSection of an unterminated section = %q", got)
	}
}

// A full report without the bridge run keeps the previous report's bridge
// section; one with it shows the new one.
func TestRenderMarkdownKeepsBridge(t *testing.T) {
	kept := renderBridge(fakeBridge(), 3)
	md := RenderMarkdown(fakeReport(), analysisPlaceholder, "bench/ratios.svg", kept)
	if !strings.Contains(md, strings.TrimSuffix(kept, "\n")) || strings.Index(md, bridgeBegin) > strings.Index(md, "## Analysis") {
		t.Fatalf("the kept section is missing or after the analysis:\n%s", md)
	}
	if got := extractSection(md, bridgeBegin, bridgeEnd); got != strings.TrimSuffix(kept, "\n") {
		t.Errorf("round trip: %q", got)
	}
	rep := fakeReport()
	rep.Bridge = fakeBridge()
	rep.Bridge.LoadAfter = "9.99 9.99 9.99"
	md = RenderMarkdown(rep, analysisPlaceholder, "bench/ratios.svg", kept)
	if strings.Count(md, bridgeBegin) != 1 || !strings.Contains(md, "9.99 9.99 9.99") {
		t.Errorf("the new bridge section is not the one shown:\n%s", md)
	}
	if md := RenderMarkdown(fakeReport(), analysisPlaceholder, "bench/ratios.svg", ""); strings.Contains(md, bridgeBegin) {
		t.Errorf("a bridge section from nowhere")
	}
}

func TestBridgeFlags(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(o.scenarios, bridgeScenario) {
		t.Errorf("the bridge scenario (it needs Django) is in the default set: %v", o.scenarios)
	}
	o, err = parseFlags([]string{"-scenarios", "bridge", "-python", "/opt/py", "-gunicorn", "/opt/gunicorn"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.scenarios, []string{bridgeScenario}) || o.paths.Python != "/opt/py" || o.paths.Gunicorn != "/opt/gunicorn" ||
		o.paths.DjangoProject != "examples/django" {
		t.Errorf("parsed %v %+v", o.scenarios, o.paths)
	}
}

// Without Django or gunicorn the bridge scenario fails, saying what to
// install; it never skips.
func TestCheckDjango(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-python")
	err := checkDjango(missing, "/bin/true")
	if err == nil || !strings.Contains(err.Error(), "python3-django") || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing python: %v", err)
	}
	err = checkDjango("/bin/true", filepath.Join(t.TempDir(), "no-such-gunicorn"))
	if err == nil || !strings.Contains(err.Error(), "apt-get install gunicorn") {
		t.Errorf("missing gunicorn: %v", err)
	}
	if err := checkDjango("/bin/true", "/bin/true"); err != nil {
		t.Errorf("both present: %v", err)
	}
	// run fails before starting anything.
	bin := t.TempDir()
	for _, b := range []string{"gateway", "worker", "siobench"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = run([]string{"-scenarios", "bridge", "-bin", bin, "-python", missing, "-out", filepath.Join(t.TempDir(), "B.md")})
	if err == nil || !strings.Contains(err.Error(), "python3-django") {
		t.Errorf("run without Django: %v", err)
	}
}
