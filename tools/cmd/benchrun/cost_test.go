package main

import (
	"os"
	"regexp"
	"runtime"
	"testing"
)

// needProc skips t where there is no /proc, except in CI (which runs on
// Linux), where that fails it.
func needProc(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		if os.Getenv("CI") != "" {
			t.Fatal("/proc is Linux's, and CI runs on Linux (CI is set: nothing may skip)")
		}
		t.Skip("/proc is Linux's")
	}
}

// The counters of this very process move as it burns CPU and reads.
func TestReadUsage(t *testing.T) {
	needProc(t)
	before, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := 0; i < 200_000_000; i++ {
		x += i % 7
	}
	for i := 0; i < 20; i++ {
		if _, err := os.ReadFile("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
	}
	after, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.cpu <= before.cpu {
		t.Errorf("CPU time %v then %v (x=%d)", before.cpu, after.cpu, x)
	}
	if after.reads < before.reads+20 {
		t.Errorf("read syscalls %d then %d, want at least 20 more", before.reads, after.reads)
	}
}

// The cost table gives, per target, each process's median per operation and
// the medians of the sums.
func TestRenderCosts(t *testing.T) {
	sc := Scenario{Name: "echo", Title: "echo", Scenario: "echo", Costs: true}
	run := func(target string, gw, rd float64) RunRecord {
		r := RunRecord{Target: target, Costs: []ProcCost{{Process: "siobench", CPUMicros: 10}}}
		if target == targetCluster {
			r.Costs = append([]ProcCost{
				{Process: "gateway", CPUMicros: gw, Reads: rd, Writes: 1, HasSyscalls: true},
				{Process: "redis", CPUMicros: 5, Reads: 0.25, Writes: 0.25, HasSyscalls: true},
			}, r.Costs...)
		} else {
			r.Costs = append([]ProcCost{{Process: "reference", CPUMicros: gw, Reads: rd, Writes: 1, HasSyscalls: true}}, r.Costs...)
		}
		return r
	}
	rep := &Report{Scenarios: []*ScenarioReport{{Scenario: sc, Clients: 100, Runs: []RunRecord{
		run(targetCluster, 20, 1.5), run(targetReference, 17, 1),
		run(targetCluster, 30, 1.4), run(targetReference, 19, 1),
		run(targetCluster, 25, 1.3), run(targetReference, 18, 1),
	}}}}
	got := renderCosts(rep)
	wantContains(t, got,
		"per ack",
		"| cluster | gateway | 25.0 | 1.40 | 1.00 |",
		"| cluster | redis | 5.0 | 0.25 | 0.25 |",
		"| cluster | siobench | 10.0 | — | — |",
		"| cluster | **servers** | **30.0** | | |",
		"| cluster | **all, with siobench** | **40.0** | | |",
		"| reference | reference | 18.0 | 1.00 | 1.00 |",
		"| reference | **servers** | **18.0** | | |",
	)
	// Scenarios without measured runs render nothing.
	rep.Scenarios[0].Runs = []RunRecord{{Target: targetCluster}}
	if got := renderCosts(rep); got != "" {
		t.Errorf("no costs rendered %q", got)
	}
}

// The machine facts come out of /proc in the shapes BENCHMARKS.md shows.
func TestMachineFactsFromProc(t *testing.T) {
	needProc(t)
	m := machineFacts(Paths{})
	if !regexp.MustCompile(`^[0-9]+\.[0-9] GiB$`).MatchString(m.Memory) {
		t.Errorf("memory %q", m.Memory)
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]{2} [0-9]+\.[0-9]{2} [0-9]+\.[0-9]{2}$`).MatchString(m.LoadBefore) {
		t.Errorf("load average %q", m.LoadBefore)
	}
}
