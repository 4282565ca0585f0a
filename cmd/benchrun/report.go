package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// Report is everything BENCHMARKS.md shows.
type Report struct {
	Quick             bool
	Runs, BigRuns     int
	Duration          time.Duration
	Command           string // how to reproduce
	Started, Finished time.Time
	Machine           Machine
	Scenarios         []*ScenarioReport
	Codec, CodecCmd   string      // codec benchmark output and command ("" if not run)
	Hold              *HoldReport // nil when not run
	Notes             []string
}

// Machine is the facts about where the benchmark ran.
type Machine struct {
	CPUs                  int
	CPUModel, Memory      string
	Kernel                string
	Go, Node, Redis, Git  string
	LoadBefore, LoadAfter string
	Files                 uint64 // open-file limit of the processes
}

// ScenarioReport is the runs of one scenario.
type ScenarioReport struct {
	Scenario Scenario
	Clients  int
	Args     []string // siobench arguments besides -url and -pid
	Skipped  string   // why it did not run, or ""
	Runs     []RunRecord
}

// RunRecord is one siobench run against one target.
type RunRecord struct {
	Target string // targetCluster or targetReference
	Index  int    // 1-based
	Result *Result
	Err    string
	Costs  []ProcCost // per ack, by process (scenarios with Costs, on Linux)
}

// Summary is a one-line account of a run for the progress output.
func (r RunRecord) Summary(sc Scenario) string {
	if r.Result == nil {
		return "failed: " + r.Err
	}
	var parts []string
	for _, m := range sc.Metrics {
		if m.Plot || m.Target != nil {
			parts = append(parts, fmt.Sprintf("%s %s", m.Name, formatValue(m.Get(*r.Result))))
		}
	}
	if len(r.Costs) > 0 {
		var cpu []string
		for _, c := range r.Costs {
			cpu = append(cpu, fmt.Sprintf("%s %.1f", c.Process, c.CPUMicros))
		}
		parts = append(parts, "CPU µs per op: "+strings.Join(cpu, " "))
	}
	return fmt.Sprintf("%d/%d connected, %s", r.Result.Connected, r.Result.Clients, strings.Join(parts, ", "))
}

// Row is one metric of one scenario: medians, ratio and verdict.
type Row struct {
	Scenario           *ScenarioReport
	Metric             Metric
	Cluster, Reference float64 // medians over the successful runs (NaN: none)
	NCluster, NRef     int     // successful runs
	Ratio              float64 // Cluster/Reference (NaN: undefined)
	Verdict            Verdict // "" when the metric has no target
}

// Rows computes the table of medians.
func Rows(rep *Report) []Row {
	var rows []Row
	for _, sr := range rep.Scenarios {
		if sr.Skipped != "" {
			continue
		}
		for _, m := range sr.Scenario.Metrics {
			var c, r []float64
			for _, run := range sr.Runs {
				if run.Result == nil {
					continue
				}
				if run.Target == targetCluster {
					c = append(c, m.Get(*run.Result))
				} else {
					r = append(r, m.Get(*run.Result))
				}
			}
			row := Row{Scenario: sr, Metric: m, Cluster: Median(c), Reference: Median(r), NCluster: len(c), NRef: len(r)}
			row.Ratio = Ratio(row.Cluster, row.Reference)
			if m.Target != nil {
				row.Verdict = m.Target.Check(row.Cluster, row.Ratio)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// Markers around the maintainers' analysis, kept across regenerations.
const (
	analysisBegin       = "<!-- analysis:begin -->"
	analysisEnd         = "<!-- analysis:end -->"
	analysisPlaceholder = "\n(to be written by the maintainers)\n"
)

// extractAnalysis returns what lies between the analysis markers of an
// earlier report, or the placeholder when there is none.
func extractAnalysis(old string) string {
	i := strings.Index(old, analysisBegin)
	if i < 0 {
		return analysisPlaceholder
	}
	rest := old[i+len(analysisBegin):]
	j := strings.Index(rest, analysisEnd)
	if j < 0 {
		return analysisPlaceholder
	}
	return rest[:j]
}

// renderTable renders the medians table in Markdown.
func renderTable(rep *Report) string {
	var b strings.Builder
	b.WriteString("| scenario | metric | better | cluster | reference | ratio | target | verdict |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | ---: | --- | --- |\n")
	last := ""
	for _, row := range Rows(rep) {
		name := ""
		if row.Scenario.Scenario.Name != last {
			last = row.Scenario.Scenario.Name
			name = fmt.Sprintf("**%s** (%s)", row.Scenario.Scenario.Title, clientsText(row.Scenario))
		}
		target, verdict := "", ""
		if row.Metric.Target != nil {
			target, verdict = row.Metric.Target.String(), string(row.Verdict)
			if row.Verdict == Met {
				verdict = "✅ met"
			} else if row.Verdict == Missed {
				verdict = "❌ missed"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, row.Metric.Name, row.Metric.Better,
			withRuns(row.Cluster, row.NCluster, planned(rep, row.Scenario)), withRuns(row.Reference, row.NRef, planned(rep, row.Scenario)), formatRatio(row.Ratio), target, verdict)
	}
	for _, sr := range rep.Scenarios {
		if sr.Skipped != "" {
			fmt.Fprintf(&b, "| **%s** (%s) | skipped: %s | | | | | | |\n", sr.Scenario.Title, clientsText(sr), sr.Skipped)
		}
	}
	return b.String()
}

// planned is the number of runs per target a scenario was to have.
func planned(rep *Report, sr *ScenarioReport) int {
	if sr.Scenario.Big {
		return rep.BigRuns
	}
	return rep.Runs
}

// withRuns formats a median, saying over how many runs when fewer than
// planned succeeded.
func withRuns(v float64, n, planned int) string {
	s := formatValue(v)
	if n > 0 && n < planned {
		s += fmt.Sprintf(" (%d of %d runs)", n, planned)
	}
	return s
}

func clientsText(sr *ScenarioReport) string {
	switch sr.Scenario.Scenario {
	case "broadcast":
		return fmt.Sprintf("%d members + 1 sender, every %s", sr.Clients-1, sr.Scenario.Interval)
	default:
		return fmt.Sprintf("%d clients", sr.Clients)
	}
}

// RenderMarkdown renders the whole report; analysis is the text kept between
// the analysis markers, plotRel the plot's path relative to the report.
func RenderMarkdown(rep *Report, analysis, plotRel string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Benchmarks\n\n")
	w("<!-- Generated by cmd/benchrun (`make bench`). Everything outside the Analysis markers is rewritten on each run. -->\n\n")
	if rep.Quick {
		w("> **Quick smoke run** (`-quick`): one run each, small client counts. These numbers are not for comparison.\n\n")
	}
	w("This cluster (one gateway, one echo worker, one Redis) side by side with the reference Socket.IO 0.9 server\n")
	w("(npm `socket.io@0.9.19` under Node, [test/reference/echo-server.js](test/reference/echo-server.js)), both running\n")
	w("the echo contract on the same machine in the same run. For each scenario `bin/siobench -json` runs against the\n")
	w("cluster and the reference in alternation (cluster, reference, cluster, …), %d runs per target (%d for the\n", rep.Runs, rep.BigRuns)
	w("10,000-member broadcast, whose runs take about a minute); timed runs last %s. The table gives the **median** of\n", rep.Duration)
	w("the runs per target and the **ratio cluster / reference**: for throughputs higher is better (ratio > 1 favours\n")
	w("the cluster), for latencies, memory, errors and missing deliveries lower is better (ratio < 1 favours the cluster).\n")
	w("Absolute times of a single run are in the raw table only.\n\n")

	w("## Reproduce\n\n```sh\n%s\n```\n\n", rep.Command)
	w("`make bench` builds `bin/` (`go build -o bin/ ./cmd/...`), installs the Node test dependencies (`make test-deps`)\n")
	w("and runs `go run ./cmd/benchrun` from the repository root; `go run ./cmd/benchrun -h` lists its flags\n")
	w("(`-runs`, `-duration`, `-scenarios`, `-quick`, …). benchrun starts its own `redis-server` on a free loopback port,\n")
	w("`bin/gateway -log-level warn -max-handshake-rate 0` (the reference has no admission control), `bin/worker -app echo\n")
	w("-log-level warn` and `node test/reference/echo-server.js`, all on 127.0.0.1. The connect scenario restarts the\n")
	w("measured server (the gateway, resp. the Node process) before each run and passes its pid with `-pid`, so RSS per\n")
	w("connection is the growth of a fresh process. The polling scenario runs through haproxy with the shipped\n")
	w("[deploy/haproxy/haproxy.cfg](deploy/haproxy/haproxy.cfg) (its bind and server lines rewritten), one haproxy process\n")
	w("per target: for the cluster in front of two gateways in plain round robin, without sticky sessions; for the\n")
	w("reference in front of its one process (socket.io 0.9 keeps sessions in process memory, so more processes would\n")
	w("need sticky sessions). Each run is `bin/siobench -url URL` plus:\n\n")
	w("| scenario | siobench arguments | runs per target |\n| --- | --- | ---: |\n")
	for _, sr := range rep.Scenarios {
		args := strings.Join(sr.Args, " ")
		if sr.Scenario.PID {
			args += " -pid PID"
		}
		w("| %s | `%s` | %d |\n", sr.Scenario.Name, args, planned(rep, sr))
	}
	w("\n")

	m := rep.Machine
	w("## Machine\n\n| | |\n| --- | --- |\n")
	w("| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s |\n| kernel | %s |\n", m.CPUs, m.CPUModel, m.Memory, m.Kernel)
	w("| Go | %s |\n| Node | %s |\n| redis-server | %s |\n| commit | %s |\n", m.Go, m.Node, m.Redis, m.Git)
	w("| date (UTC) | %s – %s |\n", rep.Started.Format("2006-01-02 15:04"), rep.Finished.Format("15:04"))
	w("| load average before / after | %s / %s |\n", m.LoadBefore, m.LoadAfter)
	w("| open-file limit | %d |\n\n", m.Files)
	w("Clients (siobench), servers and Redis share the machine's CPUs, as they would in a one-box deployment; a\n")
	w("load average well above zero before the run means something else was running and the numbers are noisier.\n\n")

	w("## Results\n\nMedians of the runs; targets from issue 6.\n\n")
	b.WriteString(renderTable(rep))
	w("\n![Ratio cluster / reference per scenario and metric](%s)\n\n", filepath.ToSlash(plotRel))
	b.WriteString(renderHold(rep.Hold))
	if len(rep.Notes) > 0 {
		w("Notes:\n\n")
		for _, n := range rep.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}

	if costs := renderCosts(rep); costs != "" {
		w("## Where the CPU goes\n\n")
		w("Medians per operation over the runs, from `/proc/<pid>/stat` (CPU time, user + system) and `/proc/<pid>/io`\n")
		w("(`syscr`, `syscw`: read and write system calls on any descriptor) read before and after each echo and polling run; the\n")
		w("clients' share is siobench's own CPU time. The counters include the run's connects and the processes'\n")
		w("background work (heartbeats, lease renewals), which are small next to thousands of operations a second.\n")
		w("With %d CPUs the machine has %d µs of CPU per second to share among all processes.\n\n", rep.Machine.CPUs, rep.Machine.CPUs*1000000)
		b.WriteString(costs)
	}

	w("## Analysis\n\n%s%s%s\n\n", analysisBegin, analysis, analysisEnd)

	w("## Every run\n\n<details>\n<summary>Raw siobench results per run (click to open)</summary>\n\n")
	w("| scenario | target | run | connected | errors | ops/s | p50 ms | p90 ms | p99 ms | max ms | missing | connects/s | RSS KiB/conn |\n")
	w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, sr := range rep.Scenarios {
		for _, r := range sr.Runs {
			if r.Result == nil {
				w("| %s | %s | %d | failed: %s | | | | | | | | | |\n", sr.Scenario.Name, r.Target, r.Index, escapeCell(r.Err))
				continue
			}
			x := r.Result
			w("| %s | %s | %d | %d/%d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %d | %.0f | %.2f |\n",
				sr.Scenario.Name, r.Target, r.Index, x.Connected, x.Clients, x.Errors, x.OpsPerS,
				x.P50ms, x.P90ms, x.P99ms, x.MaxMs, x.Missing, x.ConnectsPerS, x.RSSPerConnKB)
		}
	}
	w("\n</details>\n\n")

	if rep.Codec != "" {
		w("## Codec micro-benchmarks (packets and signal entries)\n\n```\n$ %s\n%s\n```\n", rep.CodecCmd, rep.Codec)
	}
	return b.String()
}

// escapeCell keeps a table cell on one line.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", "\\|")
}

// writeReport renders the plot and the Markdown, keeping the analysis of the
// report already at out.
func writeReport(out, plotPath string, rep *Report) error {
	old, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(plotPath), 0o755); err != nil {
		return err
	}
	if err := renderPlot(plotPath, Rows(rep)); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(out), plotPath)
	if err != nil {
		rel = plotPath
	}
	md := RenderMarkdown(rep, extractAnalysis(string(old)), rel)
	return os.WriteFile(out, []byte(md), 0o644)
}

// machineFacts collects what BENCHMARKS.md says about the machine.
func machineFacts(p Paths) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadAverage()}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if cpus, err := fs.CPUInfo(); err == nil && len(cpus) > 0 {
			m.CPUModel = cpus[0].ModelName
		}
		if mem, err := fs.Meminfo(); err == nil && mem.MemTotal != nil {
			m.Memory = fmt.Sprintf("%.1f GiB", float64(*mem.MemTotal)/(1<<20)) // MemTotal is in KiB
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Node = commandLine(p.Node, "--version")
	m.Redis = commandLine(p.RedisServer, "--version")
	m.Git = commandLine("git", "rev-parse", "--short", "HEAD")
	if st := commandLine("git", "status", "--porcelain", "--untracked-files=no"); st != "" && st != "?" {
		m.Git += " (with uncommitted changes)"
	}
	return m
}

// commandLine runs a command and returns the first line of its output ("?"
// on error).
func commandLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(bytes.TrimSpace(out)), "\n")
	return line
}

// loadAverage returns the 1, 5 and 15 minute load averages, as
// /proc/loadavg gives them ("?" if unknown).
func loadAverage() string {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "?"
	}
	l, err := fs.LoadAvg()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
}

// plotRows returns the rows drawn in the plot: metrics marked Plot with a
// finite ratio.
func plotRows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Metric.Plot && !math.IsNaN(r.Ratio) && !math.IsInf(r.Ratio, 0) {
			out = append(out, r)
		}
	}
	return out
}
