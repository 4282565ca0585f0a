package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// Where the CPU goes. Around each run of a closed-loop scenario (echo,
// polling) benchrun reads, from /proc, the
// CPU time and the read and write system calls of every server process of
// the target (the gateway, the worker and redis-server; the Node process),
// and takes siobench's own CPU time from its exit status. Divided by the
// run's acks this says what one operation costs
// each process: on a machine the clients and the servers share, the target
// that spends less CPU per operation leaves more of it to everything else.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (procfs.ProcStat's UTime and STime); 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// procUsage is one reading of a process's counters.
type procUsage struct {
	cpu           time.Duration // user + system
	reads, writes int64         // syscr, syscw: read and write system calls (any descriptor)
}

// readUsage reads /proc/<pid>/stat and /proc/<pid>/io.
func readUsage(pid int) (procUsage, error) {
	var u procUsage
	p, err := procfs.NewProc(pid)
	if err != nil {
		return u, err
	}
	st, err := p.Stat()
	if err != nil {
		return u, err
	}
	u.cpu = time.Duration(st.UTime+st.STime) * time.Second / clockTicks
	io, err := p.IO()
	if err != nil {
		return u, err
	}
	u.reads, u.writes = int64(io.SyscR), int64(io.SyscW)
	return u, nil
}

// ProcCost is what one process spent per operation during a run.
type ProcCost struct {
	Process     string  // "gateway", "worker", "redis-server", "node", "siobench"
	CPUMicros   float64 // CPU time (user + system) per operation, µs
	Reads       float64 // read system calls per operation
	Writes      float64 // write system calls per operation
	HasSyscalls bool    // Reads and Writes were measured (not for siobench)
}

// costMeter measures the server processes of a target around one run.
type costMeter struct {
	procs  []pidRef
	before []procUsage
}

// pidRef names a process to measure.
type pidRef struct {
	name string
	pid  int
}

// pidRefs names the processes benchrun started.
func pidRefs(procs []*proc) []pidRef {
	refs := make([]pidRef, len(procs))
	for i, p := range procs {
		refs[i] = pidRef{name: p.name, pid: p.pid()}
	}
	return refs
}

// startCosts reads the counters of procs before a run; processes whose
// counters cannot be read (not Linux, no /proc) are left out.
func startCosts(procs []*proc) *costMeter { return startCostsOf(pidRefs(procs)) }

// startCostsOf is startCosts for any processes (gunicorn's workers, which
// benchrun did not start itself).
func startCostsOf(procs []pidRef) *costMeter {
	m := &costMeter{}
	for _, p := range procs {
		u, err := readUsage(p.pid)
		if err != nil {
			continue
		}
		m.procs = append(m.procs, p)
		m.before = append(m.before, u)
	}
	return m
}

// finish reads the counters again and divides by ops; client is siobench's
// CPU time for the run (0: unknown).
func (m *costMeter) finish(ops int64, client time.Duration) []ProcCost {
	if ops <= 0 {
		return nil
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(ops) }
	var out []ProcCost
	for i, p := range m.procs {
		u, err := readUsage(p.pid)
		if err != nil {
			continue
		}
		b := m.before[i]
		out = append(out, ProcCost{
			Process:     p.name,
			CPUMicros:   per(u.cpu - b.cpu),
			Reads:       float64(u.reads-b.reads) / float64(ops),
			Writes:      float64(u.writes-b.writes) / float64(ops),
			HasSyscalls: true,
		})
	}
	if client > 0 {
		out = append(out, ProcCost{Process: "siobench", CPUMicros: per(client)})
	}
	return out
}

// renderCosts renders, per timed scenario and target, the median cost of an
// operation by process ("" when no run was measured).
func renderCosts(rep *Report) string {
	var b strings.Builder
	for _, sr := range rep.Scenarios {
		if !sr.Scenario.Costs {
			continue
		}
		rows := costRows(sr.Runs, []string{targetCluster, targetBaseline, targetReference, targetCeiling})
		if rows == "" {
			continue
		}
		fmt.Fprintf(&b, "**%s** (%s), per ack:\n\n", sr.Scenario.Title, clientsText(sr))
		fmt.Fprintf(&b, "| target | process | CPU µs | read syscalls | write syscalls |\n| --- | --- | ---: | ---: | ---: |\n")
		b.WriteString(rows)
		b.WriteString("\n")
	}
	return b.String()
}

// costRows renders the rows of a cost table for runs: per target (in the
// order of targets) the median cost of an operation by process, then the
// servers' sum and the sum with siobench ("" when no run was measured).
func costRows(runs []RunRecord, targets []string) string {
	var rows strings.Builder
	for _, target := range targets {
		var order []string
		cpu := map[string][]float64{}
		reads := map[string][]float64{}
		writes := map[string][]float64{}
		var servers, all []float64
		for _, r := range runs {
			if r.Target != target || len(r.Costs) == 0 {
				continue
			}
			var sum, sumAll float64
			for _, c := range r.Costs {
				if _, ok := cpu[c.Process]; !ok {
					order = append(order, c.Process)
				}
				cpu[c.Process] = append(cpu[c.Process], c.CPUMicros)
				if c.HasSyscalls {
					reads[c.Process] = append(reads[c.Process], c.Reads)
					writes[c.Process] = append(writes[c.Process], c.Writes)
					sum += c.CPUMicros
				}
				sumAll += c.CPUMicros
			}
			servers = append(servers, sum)
			all = append(all, sumAll)
		}
		if len(order) == 0 {
			continue
		}
		for _, p := range order {
			rd, wr := "—", "—"
			if len(reads[p]) > 0 {
				rd = fmt.Sprintf("%.2f", Median(reads[p]))
				wr = fmt.Sprintf("%.2f", Median(writes[p]))
			}
			fmt.Fprintf(&rows, "| %s | %s | %.1f | %s | %s |\n", target, p, Median(cpu[p]), rd, wr)
		}
		fmt.Fprintf(&rows, "| %s | **servers** | **%.1f** | | |\n", target, Median(servers))
		fmt.Fprintf(&rows, "| %s | **all, with siobench** | **%.1f** | | |\n", target, Median(all))
	}
	return rows.String()
}
