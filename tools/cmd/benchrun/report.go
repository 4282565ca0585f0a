package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
	Codec, CodecCmd   string        // codec benchmark output and command ("" if not run)
	Hold              *HoldReport   // nil when not run
	Baseline          *Baseline     // nil without -baseline or -baseline-bin
	Bridge            *BridgeReport // nil when the bridge scenario did not run
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
	Target string // targetCluster, targetBaseline or targetReference
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

// Row is one metric of one scenario: medians, ratios and verdicts.
type Row struct {
	Scenario           *ScenarioReport
	Metric             Metric
	Cluster, Reference float64 // medians over the successful runs (NaN: none)
	NCluster, NRef     int     // successful runs
	Ratio              float64 // Cluster/Reference (NaN: undefined)
	Verdict            Verdict // "" when the metric has no target

	// Against the baseline (NaN and 0 when there is none).
	Baseline    float64 // median over the baseline's successful runs
	NBase       int     // its successful runs
	BaseRatio   float64 // the median of the rounds' cluster/baseline ratios (NaN: undefined)
	BaseVerdict Verdict // the metric's Tolerance checked on BaseRatio; "" when it has none
}

// Rows computes the table of medians.
func Rows(rep *Report) []Row {
	var rows []Row
	for _, sr := range rep.Scenarios {
		if sr.Skipped != "" {
			continue
		}
		for _, m := range sr.Scenario.Metrics {
			by := map[string][]float64{}
			round := map[int]map[string]float64{} // run index -> target -> value
			for _, run := range sr.Runs {
				if run.Result != nil {
					v := m.Get(*run.Result)
					by[run.Target] = append(by[run.Target], v)
					if round[run.Index] == nil {
						round[run.Index] = map[string]float64{}
					}
					round[run.Index][run.Target] = v
				}
			}
			c, r, base := by[targetCluster], by[targetReference], by[targetBaseline]
			row := Row{Scenario: sr, Metric: m, Cluster: Median(c), Reference: Median(r), NCluster: len(c), NRef: len(r),
				Baseline: Median(base), NBase: len(base)}
			row.Ratio = Ratio(row.Cluster, row.Reference)
			row.BaseRatio = pairedRatio(round, targetCluster, targetBaseline)
			if m.Target != nil {
				row.Verdict = m.Target.Check(row.Cluster, row.Ratio)
			}
			if m.Tolerance != nil && rep.Baseline != nil {
				row.BaseVerdict = m.Tolerance.Check(row.Cluster, row.BaseRatio)
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// pairedRatio is the median, over the rounds in which both targets ran
// successfully, of a/b within the round. The targets of a round run back
// to back, so each ratio sees about the same machine load; its median
// cancels the load's drift across rounds better than a ratio of medians.
// NaN when no round has both.
func pairedRatio(round map[int]map[string]float64, a, b string) float64 {
	var rs []float64
	for _, r := range round {
		va, okA := r[a]
		vb, okB := r[b]
		if okA && okB {
			if q := Ratio(va, vb); !math.IsNaN(q) {
				rs = append(rs, q)
			}
		}
	}
	return Median(rs)
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
	heads := []string{"cluster", "reference", "ratio", "target", "verdict"}
	return renderRows(rep, heads, 3, func(row Row) []string {
		target, verdict := "", ""
		if row.Metric.Target != nil {
			target, verdict = row.Metric.Target.String(), string(row.Verdict)
			if row.Verdict == Met {
				verdict = "✅ met"
			} else if row.Verdict == Missed {
				verdict = "❌ missed"
			}
		}
		return []string{withRuns(row.Cluster, row.NCluster, planned(rep, row.Scenario)), withRuns(row.Reference, row.NRef, planned(rep, row.Scenario)),
			formatRatio(row.Ratio), target, verdict}
	})
}

// renderBaselineTable renders the medians of the cluster and the baseline
// and their ratios in Markdown.
func renderBaselineTable(rep *Report) string {
	heads := []string{"cluster", "baseline", "ratio", "change", "tolerance", "within"}
	return renderRows(rep, heads, 4, func(row Row) []string {
		tolerance, within := "", ""
		if row.Metric.Tolerance != nil {
			tolerance = row.Metric.Tolerance.String()
			within = map[Verdict]string{Met: "✅ yes", Missed: "❌ no", NoData: "n/a"}[row.BaseVerdict]
		}
		return []string{withRuns(row.Cluster, row.NCluster, planned(rep, row.Scenario)), withRuns(row.Baseline, row.NBase, planned(rep, row.Scenario)),
			formatRatio(row.BaseRatio), formatChange(row.BaseRatio), tolerance, within}
	})
}

// renderRows renders Rows(rep) as a Markdown table: the scenario (named on
// its first row only), the metric and which way is better, then a column per
// name in heads, the first numeric of them right-aligned (numbers), filled
// by cells (one string per head); then a row per skipped scenario.
func renderRows(rep *Report, heads []string, numeric int, cells func(Row) []string) string {
	var b strings.Builder
	b.WriteString("| scenario | metric | better | " + strings.Join(heads, " | ") + " |\n")
	b.WriteString("| --- | --- | --- |" + strings.Repeat(" ---: |", numeric) + strings.Repeat(" --- |", len(heads)-numeric) + "\n")
	last := ""
	for _, row := range Rows(rep) {
		name := ""
		if row.Scenario.Scenario.Name != last {
			last = row.Scenario.Scenario.Name
			name = fmt.Sprintf("**%s** (%s)", row.Scenario.Scenario.Title, clientsText(row.Scenario))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, row.Metric.Name, row.Metric.Better, strings.Join(cells(row), " | "))
	}
	for _, sr := range rep.Scenarios {
		if sr.Skipped != "" {
			// Empty cells for better and every head.
			fmt.Fprintf(&b, "| **%s** (%s) | skipped: %s |%s\n", sr.Scenario.Title, clientsText(sr), sr.Skipped, strings.Repeat(" |", 1+len(heads)))
		}
	}
	return b.String()
}

// formatChange formats a ratio as a change in percent, "+4.2%", "−4.8%",
// or "—" for NaN.
func formatChange(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	c := (r - 1) * 100
	if math.Abs(c) < 0.05 {
		return "0.0%"
	}
	if c < 0 {
		return fmt.Sprintf("−%.1f%%", -c)
	}
	return fmt.Sprintf("+%.1f%%", c)
}

// baselineVerdict says, from the medians, whether every measure with a
// tolerance is within it against the baseline, naming each with its ratio.
func baselineVerdict(rep *Report) string {
	var within, beyond, noData []string
	for _, row := range Rows(rep) {
		if row.Metric.Tolerance == nil {
			continue
		}
		what := fmt.Sprintf("%s %s %s, %s (cluster %s, baseline %s; %s)", row.Scenario.Scenario.Name, row.Metric.Name,
			formatRatio(row.BaseRatio), formatChange(row.BaseRatio), formatValue(row.Cluster), formatValue(row.Baseline), toleranceText(*row.Metric.Tolerance))
		switch row.BaseVerdict {
		case Met:
			within = append(within, what)
		case Missed:
			beyond = append(beyond, what)
		default:
			noData = append(noData, what)
		}
	}
	runs := "Computed from the ratios in the table above (each the median of the rounds' ratios)."
	var parts []string
	if len(beyond) > 0 {
		parts = append(parts, "beyond: "+strings.Join(beyond, "; "))
	}
	if len(within) > 0 {
		parts = append(parts, "within: "+strings.Join(within, "; "))
	}
	if len(noData) > 0 {
		parts = append(parts, "no data: "+strings.Join(noData, "; "))
	}
	switch {
	case len(beyond) > 0:
		return "**Within tolerance of the baseline: no.** " + strings.Join(parts, ". ") + ". " + runs
	case len(noData) > 0:
		return "**Within tolerance of the baseline: not established.** " + strings.Join(parts, ". ") + ". " + runs
	case len(within) > 0:
		return "**Within tolerance of the baseline: yes.** " + strings.Join(parts, ". ") + ". " + runs
	}
	return "**Within tolerance of the baseline: not established.** No measure with a tolerance ran (echo acks/s, broadcast latency p99)."
}

// toleranceText says what a tolerance allows: "at most 5% lower".
func toleranceText(t Target) string {
	pct := func(x float64) string { return strconv.FormatFloat(math.Round(x*1000)/10, 'f', -1, 64) }
	switch t.Kind {
	case RatioAtLeast:
		return "may be at most " + pct(1-t.Limit) + "% lower"
	case RatioAtMost:
		return "may be at most " + pct(t.Limit-1) + "% higher"
	}
	return t.String()
}

// baselineWhat names the baseline in a sentence: "commit 64b3d19 (“subject”)".
func baselineWhat(bl *Baseline) string {
	if bl.Commit == "" {
		return "the gateway and worker in `" + bl.Bin + "`"
	}
	s := "commit " + bl.Commit
	if bl.Dirty {
		s += " with uncommitted changes"
	}
	if bl.Subject != "" {
		s += fmt.Sprintf(" (“%s”)", bl.Subject)
	}
	return s
}

// builtFrom says which commit -baseline-bin's binaries were built from, if
// they say.
func builtFrom(bl *Baseline) string {
	if bl.Commit == "" {
		return " (their build information names no commit)"
	}
	return ", built from " + baselineWhat(bl)
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
// bridge is the bridge section to show when rep.Bridge is nil (kept from
// the previous report; "" for none).
func RenderMarkdown(rep *Report, analysis, plotRel, bridge string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Benchmarks\n\n")
	w("<!-- Generated by tools/cmd/benchrun (`make bench`). Everything outside the Analysis markers is rewritten on each run. -->\n\n")
	if rep.Quick {
		w("> **Quick smoke run** (`-quick`): one run each, small client counts. These numbers are not for comparison.\n\n")
	}
	w("This cluster (one gateway, one echo worker, one Redis) side by side with the reference Socket.IO 0.9 server\n")
	w("(npm `socket.io@0.9.19` under Node, [test/reference/echo-server.js](test/reference/echo-server.js)), both running\n")
	w("the echo contract on the same machine in the same run. For each scenario `bin/siobench -json` runs against the\n")
	order := "cluster, reference, cluster, …"
	if rep.Baseline != nil {
		order = "cluster, baseline, reference, cluster, …"
	}
	w("cluster and the reference in alternation (%s), %d runs per target (%d for the\n", order, rep.Runs, rep.BigRuns)
	w("10,000-member broadcast, whose runs take about a minute); timed runs last %s. The table gives the **median** of\n", rep.Duration)
	w("the runs per target and the **ratio cluster / reference**: for throughputs higher is better (ratio > 1 favours\n")
	w("the cluster), for latencies, memory, errors and missing deliveries lower is better (ratio < 1 favours the cluster).\n")
	w("Absolute times of a single run are in the raw table only.\n\n")
	if bl := rep.Baseline; bl != nil {
		w("The third target, the **baseline**, is this cluster built from %s;\n", baselineWhat(bl))
		w("see *Against the baseline* below.\n\n")
	}

	w("## Reproduce\n\n```sh\n%s\n```\n\n", rep.Command)
	w("`make bench` builds `bin/` (`make build`: the commands of the root module and of the tools module in `tools/`),\n")
	w("installs the Node test dependencies (`make test-deps`) and runs `bin/benchrun` from the repository root;\n")
	w("`bin/benchrun -h` lists its flags (`-runs`, `-duration`, `-scenarios`, `-quick`, …). benchrun starts its own\n")
	w("`redis-server` on a free loopback port,\n")
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
	if bl := rep.Baseline; bl != nil {
		if bl.Build != "" {
			w("The baseline (`-baseline %s`): benchrun unpacked commit %s into a temporary directory DIR and built\n", bl.Rev, bl.Commit)
			w("its gateway and worker there,\n`%s`,\nthen removed DIR after the run.\n", bl.Build)
		} else {
			w("The baseline (`-baseline-bin %s`): the gateway and worker in that directory%s.\n", bl.Bin, builtFrom(bl))
		}
		w("It gets what the cluster gets: its own `redis-server`, the same gateway and worker flags, the same runs of\n")
		w("the same scenarios, for the polling scenario a second gateway and a haproxy of its own, and a restarted\n")
		w("gateway before each connect run. The idle targets stay up during the other targets' runs, as the cluster\n")
		w("and the reference always do.\n\n")
	}

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
	b.WriteString(renderCeiling(rep))
	w("\n![Ratio cluster / reference per scenario and metric](%s)\n\n", filepath.ToSlash(plotRel))
	b.WriteString(renderHold(rep.Hold))
	if len(rep.Notes) > 0 {
		w("Notes:\n\n")
		for _, n := range rep.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}

	if rep.Baseline != nil {
		w("## Against the baseline (%s)\n\n", rep.Baseline.Label())
		w("Medians of the runs of the cluster and of the baseline, %s,\n", baselineWhat(rep.Baseline))
		w("and the **ratio cluster / baseline**: the median of the ratios of each round's two runs (they run back to back,\n")
		w("so each ratio sees the same load), also as a change in percent: for throughputs a ratio below 1 means the\n")
		w("cluster does less than the baseline, for latencies a ratio above 1 means it is slower. The tolerance is how much\n")
		w("worse the cluster may be.\n\n")
		b.WriteString(renderBaselineTable(rep))
		w("\n%s\n\n", baselineVerdict(rep))
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

	if rep.Bridge != nil {
		bridge = renderBridge(rep.Bridge, rep.Runs)
	}
	if bridge != "" {
		w("%s\n\n", strings.TrimSuffix(bridge, "\n"))
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
		w("## Micro-benchmarks: the codec (packets, signal entries) and the commit scripts (against redis-server)\n\n```\n$ %s\n%s\n```\n", rep.CodecCmd, rep.Codec)
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
	md := RenderMarkdown(rep, extractAnalysis(string(old)), rel, extractSection(string(old), bridgeBegin, bridgeEnd))
	if shards := extractSection(string(old), shardsBegin, shardsEnd); shards != "" {
		md = spliceShards(md, shards+"\n") // the shards run writes its section alone: keep it
	}
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

// renderCeiling renders the line comparing the echo scenario with its
// ceiling (bin/wsecho): the medians of acks/s and p99, and each target's
// share of the ceiling's acks/s ("" when the ceiling did not run).
func renderCeiling(rep *Report) string {
	for _, sr := range rep.Scenarios {
		if sr.Scenario.Name != ceilingScenario {
			continue
		}
		acks, p99 := map[string][]float64{}, map[string][]float64{}
		for _, r := range sr.Runs {
			if r.Result != nil {
				acks[r.Target] = append(acks[r.Target], r.Result.OpsPerS)
				p99[r.Target] = append(p99[r.Target], r.Result.P99ms)
			}
		}
		ceiling := Median(acks[targetCeiling])
		if len(acks[targetCeiling]) == 0 || ceiling <= 0 {
			return ""
		}
		var shares []string
		for _, t := range []string{targetCluster, targetBaseline, targetReference} {
			if len(acks[t]) > 0 {
				shares = append(shares, fmt.Sprintf("%s %.0f%%", t, 100*Median(acks[t])/ceiling))
			}
		}
		return fmt.Sprintf("\n**Ceiling** of the echo scenario: a bare websocket echo (`bin/wsecho`: gorilla/websocket, no Socket.IO\n"+
			"framing, no sessions, no Redis) driven by `siobench -scenario ws-echo` with the same %d clients, in the same\n"+
			"rounds: %.0f echoes/s, p99 %.2f ms (median of %d runs). Each target's acks/s as a share of it: %s.\n",
			sr.Clients, ceiling, Median(p99[targetCeiling]), len(acks[targetCeiling]), strings.Join(shares, ", "))
	}
	return ""
}
