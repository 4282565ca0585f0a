package main

import (
	"strconv"
	"time"

	"github.com/realtime/realtime/tools/internal/benchresult"
)

// Result is the JSON summary siobench prints with -json.
type Result = benchresult.Result

// Metric is one number taken from each run of a scenario.
type Metric struct {
	Name   string // e.g. "acks/s", "p99 RTT (ms)"
	Better Direction
	Get    func(Result) float64
	Target *Target // nil: no target in the issue
	// Tolerance is how much the cluster may lose against the baseline, as
	// a target for the ratio cluster/baseline (nil: not checked).
	Tolerance *Target
	Plot      bool // drawn in the ratio plot
}

// The tolerances against the baseline: a change may cost at most 5% of
// echo throughput and of broadcast p99 latency.
var (
	toleranceThroughput = &Target{Kind: RatioAtLeast, Limit: 0.95}
	toleranceLatency    = &Target{Kind: RatioAtMost, Limit: 1.05}
)

// Scenario is one siobench invocation, run against both targets.
type Scenario struct {
	Name     string // flag name, e.g. "broadcast-1k"
	Title    string // for the table, e.g. "broadcast to 1,000 members"
	Scenario string // siobench -scenario
	Clients  int
	// QuickClients replaces Clients with -quick.
	QuickClients int
	Interval     time.Duration // broadcast: -interval
	Concurrency  int           // siobench -concurrency (0: its default)
	Timed        bool          // siobench -duration applies
	PID          bool          // pass -pid of the server; restart it before each run
	Big          bool          // runs at most -big-runs times per target
	// Costs: measure the CPU and system calls per operation of each process
	// (closed-loop scenarios, where the connects are negligible next to
	// the operations).
	Costs bool
	// LB: run through a load balancer per target (lb.go).
	LB      bool
	Metrics []Metric
}

// Args returns the siobench arguments for one run, without -url and -pid.
func (s Scenario) Args(clients int, duration time.Duration) []string {
	a := []string{"-json", "-scenario", s.Scenario, "-clients", strconv.Itoa(clients)}
	if s.Timed {
		a = append(a, "-duration", duration.String())
	}
	if s.Interval > 0 {
		a = append(a, "-interval", s.Interval.String())
	}
	if s.Concurrency > 0 {
		a = append(a, "-concurrency", strconv.Itoa(s.Concurrency))
	}
	return a
}

func latencyMetrics(prefix string, p99, p99Tolerance *Target) []Metric {
	return []Metric{
		{Name: prefix + " p50 (ms)", Better: LowerBetter, Get: func(r Result) float64 { return r.P50ms }, Plot: true},
		{Name: prefix + " p99 (ms)", Better: LowerBetter, Get: func(r Result) float64 { return r.P99ms }, Target: p99, Tolerance: p99Tolerance, Plot: true},
		{Name: prefix + " max (ms)", Better: LowerBetter, Get: func(r Result) float64 { return r.MaxMs }},
	}
}

var errorsMetric = Metric{Name: "errors", Better: LowerBetter, Get: func(r Result) float64 { return float64(r.Errors) }}

func echoMetrics(p99, acks, acksTolerance *Target) []Metric {
	m := []Metric{{Name: "acks/s", Better: HigherBetter, Get: func(r Result) float64 { return r.OpsPerS }, Target: acks, Tolerance: acksTolerance, Plot: true}}
	m = append(m, latencyMetrics("RTT", p99, nil)...)
	return append(m, errorsMetric)
}

func broadcastMetrics() []Metric {
	m := latencyMetrics("latency", &Target{Kind: RatioAtMost, Limit: 1}, toleranceLatency)
	return append(m,
		Metric{Name: "deliveries/s", Better: HigherBetter, Get: func(r Result) float64 { return r.OpsPerS }},
		Metric{Name: "missing deliveries", Better: LowerBetter, Get: func(r Result) float64 { return float64(r.Missing) }},
		errorsMetric,
	)
}

// Scenarios returns every scenario, in the order they run.
func Scenarios() []Scenario {
	return []Scenario{
		{
			Name: "echo", Title: "echo, websocket, closed loop", Scenario: "echo",
			Clients: 100, QuickClients: 20, Timed: true, Costs: true,
			Metrics: echoMetrics(&Target{Kind: RatioAtMost, Limit: 2}, &Target{Kind: RatioAtLeast, Limit: 1}, toleranceThroughput),
		},
		{
			Name: "polling", Title: "echo, xhr-polling through haproxy, closed loop", Scenario: "polling",
			Clients: 100, QuickClients: 20, Timed: true, Costs: true, LB: true,
			Metrics: echoMetrics(nil, nil, nil),
		},
		{
			Name: "broadcast-1k", Title: "broadcast to 1,000 room members", Scenario: "broadcast",
			Clients: 1001, QuickClients: 101, Interval: 250 * time.Millisecond, Timed: true,
			Metrics: broadcastMetrics(),
		},
		{
			Name: "broadcast-10k", Title: "broadcast to 10,000 room members", Scenario: "broadcast",
			Clients: 10001, QuickClients: 1001, Interval: time.Second, Concurrency: 100, Timed: true, Big: true,
			Metrics: broadcastMetrics(),
		},
		{
			Name: "connect", Title: "connect, websocket, then idle", Scenario: "connect",
			Clients: 5000, QuickClients: 500, PID: true,
			Metrics: []Metric{
				{Name: "connects/s", Better: HigherBetter, Get: func(r Result) float64 { return r.ConnectsPerS }, Plot: true},
				{Name: "server RSS per connection (KiB)", Better: LowerBetter, Get: func(r Result) float64 { return r.RSSPerConnKB },
					Target: &Target{Kind: ClusterAtMost, Limit: 8, Unit: "KiB"}, Plot: true},
				errorsMetric,
			},
		},
	}
}
