package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/freeport"
)

// The shards run measures what each Redis Cluster primary (a shard) spends
// per operation, with the cluster's keyspace spread over 1 and over 3
// primaries (docs/redis.md, "Partitions and hash slots"), and projects from
// those figures what a cluster of N shards carries. Each target is a Redis
// Cluster of its own (redis-server processes with cluster mode on, no
// replicas, the 16384 slots split evenly), one gateway and one echo worker
// with the defaults a user runs. Three scenarios run against each target in
// alternation, 1 primary then 3, round after round:
//
//   - echo: websocket echo, closed loop (CPU and commands per ack);
//   - connect: clients connect, then all close (CPU per session);
//   - broadcast: room members receive a broadcast each interval (CPU per
//     delivery, net of the connects: the connect scenario's CPU per session
//     times the members is taken off), and Redis memory per session (the
//     peak of used_memory during the run above the one before, over the
//     members).
//
// Per shard benchrun reads, around each run, Redis's own CPU time (INFO
// cpu, used_cpu_user + used_cpu_sys: getrusage, to the microsecond, where
// /proc/<pid>/stat counts in 10 ms ticks), the commands it processed (INFO
// stats total_commands_processed: what clients sent, a script counting
// once) and used_memory (INFO memory, also sampled during the run).
//
// Run alone (-scenarios shards), it rewrites only its own section of the
// report (between shardsBegin and shardsEnd); a full run keeps the section
// of the previous report.

// shardsScenario is the shards run's name in -scenarios.
const shardsScenario = "shards"

// Markers around the shards section of the report.
const (
	shardsBegin = "<!-- shards:begin -->"
	shardsEnd   = "<!-- shards:end -->"
)

// shardTargets are the numbers of primaries measured.
var shardTargets = []int{1, 3}

// shardsPartitions is the partitions the clusters run with: the gateway's
// and worker's default (bus.DefaultPartitions), which the model divides
// among the shards.
const shardsPartitions = 16

// The shards run's scenarios: the arguments of siobench besides -url, and
// the quick run's clients.
type shardScenario struct {
	Name         string // "echo", "connect", "broadcast"
	Scenario     Scenario
	Per          string // what one operation is, for the tables
	Clients      int
	QuickClients int
}

func shardScenarios() []shardScenario {
	sc := Scenarios()
	echo, connect := sc[0], sc[4]
	broadcast := sc[2]
	broadcast.Interval = 100 * time.Millisecond
	return []shardScenario{
		{Name: "echo", Scenario: echo, Per: "ack", Clients: 100, QuickClients: 20},
		{Name: "connect", Scenario: connect, Per: "session", Clients: 1001, QuickClients: 101},
		{Name: "broadcast", Scenario: broadcast, Per: "delivery", Clients: 1001, QuickClients: 101},
	}
}

// ShardUsage is what one Redis Cluster primary spent during a run.
type ShardUsage struct {
	Node     string        // host:port
	CPU      time.Duration // user + system
	Commands int64         // total_commands_processed
	PeakMem  int64         // peak used_memory during the run above the one before, bytes
}

// ShardRun is one run of the shards run.
type ShardRun struct {
	Primaries int
	Scenario  string
	Index     int
	Result    *Result
	Shards    []ShardUsage
	Costs     []ProcCost // the gateway's and worker's, per operation
	Err       string
}

// ShardsReport is the outcome of the shards run.
type ShardsReport struct {
	Runs       []ShardRun
	Duration   time.Duration
	RunsPer    int
	Quick      bool
	Command    string
	Started    time.Time
	Finished   time.Time
	LoadBefore string
	LoadAfter  string
	Notes      []string
	Err        string
}

// redisCluster is a Redis Cluster of primaries only, started by benchrun.
type redisCluster struct {
	nodes []*proc
	addrs []string
	buses []int
}

// url returns the cluster's URL in go-redis's cluster form
// (redis.ParseClusterURL), which -redis takes.
func (rc *redisCluster) url() string {
	u := "redis://" + rc.addrs[0]
	for i, a := range rc.addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

func (rc *redisCluster) stop() {
	for _, n := range rc.nodes {
		n.stop(5 * time.Second)
	}
}

// startRedisCluster starts primaries redis-server nodes with cluster mode
// on, splits the slots evenly among them (as redis-cli --cluster create
// does), has them meet and waits until every node reports cluster_state:ok
// and knows the others. The cluster is returned also on error, so that what
// started can be stopped.
func startRedisCluster(ctx context.Context, redisServer, logDir string, primaries int) (*redisCluster, error) {
	rc := &redisCluster{}
	for i := range primaries {
		port, err := freeport.Loopback()
		if err != nil {
			return rc, err
		}
		bus, err := freeport.Loopback()
		if err != nil {
			return rc, err
		}
		dir, err := os.MkdirTemp(logDir, "redis-")
		if err != nil {
			return rc, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p, err := startProc(logDir, fmt.Sprintf("redis-%d", i+1), dir, nil, nil, redisServer,
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(bus),
			"--cluster-require-full-coverage", "no")
		if err != nil {
			return rc, err
		}
		rc.nodes, rc.addrs, rc.buses = append(rc.nodes, p), append(rc.addrs, addr), append(rc.buses, bus)
		if err := waitFor(ctx, p, 10*time.Second, func() error { return redisPing(addr) }); err != nil {
			return rc, err
		}
	}
	host, port, _ := strings.Cut(rc.addrs[0], ":")
	for i, addr := range rc.addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		lo, hi := i*16384/primaries, (i+1)*16384/primaries-1
		err := c.ClusterAddSlotsRange(ctx, lo, hi).Err()
		if err == nil && i > 0 {
			// CLUSTER MEET ip port cluster-port: the bus is not on port+10000.
			err = c.Do(ctx, "CLUSTER", "MEET", host, port, rc.buses[0]).Err()
		}
		c.Close()
		if err != nil {
			return rc, fmt.Errorf("redis cluster node %s: %w", addr, err)
		}
	}
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if last = rc.ready(ctx); last == nil {
			return rc, nil
		}
	}
	return rc, fmt.Errorf("redis cluster of %d never ready: %w", primaries, last)
}

// ready checks that every node reports cluster_state:ok and knows every
// node.
func (rc *redisCluster) ready(ctx context.Context) error {
	for _, addr := range rc.addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		info, err := c.ClusterInfo(ctx).Result()
		c.Close()
		if err != nil {
			return err
		}
		f := infoFields(info)
		if f["cluster_state"] != "ok" || f["cluster_known_nodes"] != strconv.Itoa(len(rc.addrs)) {
			return fmt.Errorf("%s: cluster_state %s, known nodes %s", addr, f["cluster_state"], f["cluster_known_nodes"])
		}
	}
	return nil
}

// infoFields parses the name:value lines of an INFO or CLUSTER INFO reply.
func infoFields(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// shardMeter measures the primaries of a Redis Cluster around one run: CPU
// from INFO cpu, commands processed from INFO stats, and used_memory sampled
// every shardMemEvery.
type shardMeter struct {
	rc      *redisCluster
	clients []*redis.Client
	before  []ShardUsage
	base    []int64 // used_memory before
	peak    []int64
	stop    chan struct{}
	done    sync.WaitGroup
}

const shardMemEvery = 200 * time.Millisecond

func startShardMeter(ctx context.Context, rc *redisCluster) (*shardMeter, error) {
	m := &shardMeter{rc: rc, stop: make(chan struct{})}
	for _, addr := range rc.addrs {
		m.clients = append(m.clients, redis.NewClient(&redis.Options{Addr: addr}))
	}
	for i := range rc.nodes {
		u, mem, err := m.read(ctx, i)
		if err != nil {
			m.close()
			return nil, err
		}
		m.before, m.base, m.peak = append(m.before, u), append(m.base, mem), append(m.peak, mem)
	}
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(shardMemEvery)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			for i, c := range m.clients {
				if mem, err := usedMemory(ctx, c); err == nil {
					m.peak[i] = max(m.peak[i], mem)
				}
			}
		}
	}()
	return m, nil
}

// read reads node i's CPU time, commands processed and used_memory.
func (m *shardMeter) read(ctx context.Context, i int) (ShardUsage, int64, error) {
	u := ShardUsage{Node: m.rc.addrs[i]}
	info, err := m.clients[i].Info(ctx, "cpu", "stats", "memory").Result()
	if err != nil {
		return u, 0, err
	}
	f := infoFields(info)
	var cpu float64
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		s, err := strconv.ParseFloat(f[k], 64)
		if err != nil {
			return u, 0, fmt.Errorf("%s: INFO %s: %w", u.Node, k, err)
		}
		cpu += s
	}
	u.CPU = time.Duration(cpu * float64(time.Second))
	if u.Commands, err = strconv.ParseInt(f["total_commands_processed"], 10, 64); err != nil {
		return u, 0, fmt.Errorf("%s: INFO total_commands_processed: %w", u.Node, err)
	}
	mem, err := strconv.ParseInt(f["used_memory"], 10, 64)
	return u, mem, err
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(infoFields(info)["used_memory"], 10, 64)
}

// finish stops sampling and returns each node's usage during the run (the
// INFO commands benchrun sent itself are not taken off: a few per run).
func (m *shardMeter) finish(ctx context.Context) ([]ShardUsage, error) {
	close(m.stop)
	m.done.Wait()
	defer m.close()
	out := make([]ShardUsage, len(m.before))
	for i, b := range m.before {
		u, _, err := m.read(ctx, i)
		if err != nil {
			return nil, err
		}
		out[i] = ShardUsage{Node: b.Node, CPU: u.CPU - b.CPU, Commands: u.Commands - b.Commands, PeakMem: m.peak[i] - m.base[i]}
	}
	return out, nil
}

func (m *shardMeter) close() {
	for _, c := range m.clients {
		c.Close()
	}
}

// shardCluster is one target of the shards run: a Redis Cluster, a gateway
// and an echo worker.
type shardCluster struct {
	*cluster
	redis *redisCluster
}

func startShardCluster(ctx context.Context, o options, logDir string, primaries int) (*shardCluster, error) {
	sc := &shardCluster{cluster: &cluster{target: fmt.Sprintf("%d primaries", primaries), bin: o.paths.Bin,
		redisServer: o.paths.RedisServer, logDir: logDir}}
	var err error
	sc.redis, err = startRedisCluster(ctx, o.paths.RedisServer, logDir, primaries)
	if err != nil {
		return sc, err
	}
	sc.redisURL = sc.redis.url()
	if sc.gatewayPort, err = freeport.Loopback(); err != nil {
		return sc, err
	}
	if sc.gatewayAdmin, err = freeport.Loopback(); err != nil {
		return sc, err
	}
	sc.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", sc.gatewayPort)
	if err := sc.startGateway(ctx); err != nil {
		return sc, err
	}
	return sc, sc.startWorker(ctx)
}

func (sc *shardCluster) stop() {
	sc.gateway.stop(10 * time.Second)
	sc.worker.stop(10 * time.Second)
	if sc.redis != nil {
		sc.redis.stop()
	}
}

// runShards starts a target per entry of shardTargets, runs the shards
// scenarios against them in alternation and stops them. An error that ends
// the run early is kept in the report's Err with the runs made until then.
func runShards(ctx context.Context, o options, logDir string) *ShardsReport {
	rep := &ShardsReport{Duration: o.duration, RunsPer: o.runs, Quick: o.quick, Started: time.Now().UTC(), LoadBefore: loadAverage()}
	if note := busyNote(rep.LoadBefore, runtime.NumCPU()); note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	if err := shardRuns(ctx, o, logDir, rep); err != nil {
		rep.Err = err.Error()
	}
	rep.Finished, rep.LoadAfter = time.Now().UTC(), loadAverage()
	return rep
}

func shardRuns(ctx context.Context, o options, logDir string, rep *ShardsReport) error {
	targets := map[int]*shardCluster{}
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for _, n := range shardTargets {
		dir := filepath.Join(logDir, fmt.Sprintf("shards-%d", n))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		t, err := startShardCluster(ctx, o, dir, n)
		targets[n] = t
		if err != nil {
			return fmt.Errorf("cluster on %d primaries: %w", n, err)
		}
	}
	for i := range o.runs {
		for _, ss := range shardScenarios() {
			for _, n := range shardTargets {
				if err := ctx.Err(); err != nil {
					return err
				}
				r := shardRun(ctx, o, targets[n], n, ss, i+1)
				rep.Runs = append(rep.Runs, r)
				fmt.Fprintf(os.Stderr, "benchrun: shards %d primaries %s run %d/%d: %s\n", n, ss.Name, i+1, o.runs,
					r.summary())
				if r.Err != "" && targets[n].exitedAny() {
					return errors.New(r.Err)
				}
			}
		}
	}
	return nil
}

// exitedAny reports whether a process of the target has ended.
func (sc *shardCluster) exitedAny() bool {
	return slices.ContainsFunc(append([]*proc{sc.gateway, sc.worker}, sc.redis.nodes...), (*proc).exited)
}

func shardRun(ctx context.Context, o options, t *shardCluster, primaries int, ss shardScenario, index int) ShardRun {
	r := ShardRun{Primaries: primaries, Scenario: ss.Name, Index: index}
	for _, p := range append([]*proc{t.gateway, t.worker}, t.redis.nodes...) {
		if p.exited() {
			r.Err = p.failure(errors.New("exited during the benchmark")).Error()
			return r
		}
	}
	clients := ss.Clients
	if o.quick {
		clients = ss.QuickClients
	}
	meter, err := startShardMeter(ctx, t.redis)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	procs := startCosts([]*proc{t.gateway, t.worker})
	res, _, err := siobench(ctx, o.paths.Bin, ss.Scenario, clients, o.duration,
		append([]string{"-url", t.gatewayURL}, ss.Scenario.Args(clients, o.duration)...))
	shards, merr := meter.finish(ctx)
	switch {
	case err != nil:
		r.Err = err.Error()
	case merr != nil:
		r.Err = merr.Error()
	default:
		r.Result, r.Shards = &res, shards
		r.Costs = procs.finish(shardOps(ss.Name, res), 0)
	}
	return r
}

// shardOps is the number of operations of a run: acks, sessions or
// deliveries.
func shardOps(scenario string, res Result) int64 {
	if scenario == "connect" {
		return int64(res.Connected)
	}
	return res.Ops
}

// shardRate is the throughput of a run: acks, connects or deliveries per
// second.
func shardRate(scenario string, res Result) float64 {
	if scenario == "connect" {
		return res.ConnectsPerS
	}
	return res.OpsPerS
}

func (r ShardRun) summary() string {
	if r.Result == nil {
		return "failed: " + r.Err
	}
	ops := shardOps(r.Scenario, *r.Result)
	var parts []string
	for _, s := range r.Shards {
		parts = append(parts, fmt.Sprintf("%.1f", micros(s.CPU, ops)))
	}
	return fmt.Sprintf("%d ops (%.0f/s), %d errors, Redis CPU µs per op by shard: %s", ops, shardRate(r.Scenario, *r.Result),
		r.Result.Errors, strings.Join(parts, " / "))
}

func micros(d time.Duration, ops int64) float64 {
	if ops <= 0 {
		return math.NaN()
	}
	return float64(d.Microseconds()) / float64(ops)
}

// shardFigures are the medians of one scenario on one target: per
// operation, each shard's CPU (µs, shards by decreasing cost) and commands,
// the gateway's and worker's CPU, and per session each shard's memory.
type shardFigures struct {
	Runs      int
	Ops       float64   // operations per run
	OpsPerS   float64   // throughput
	CPU       []float64 // per shard, busiest first
	Commands  []float64 // per shard, in the order of CPU
	Memory    []float64 // bytes per session, per shard (broadcast only)
	Processes map[string]float64
}

// Total is the shards' CPU per operation, µs.
func (f shardFigures) Total() float64 {
	var s float64
	for _, c := range f.CPU {
		s += c
	}
	return s
}

// Busiest is the busiest shard's share of the shards' CPU.
func (f shardFigures) Busiest() float64 {
	if len(f.CPU) == 0 || f.Total() == 0 {
		return math.NaN()
	}
	return f.CPU[0] / f.Total()
}

// shardMedians computes the figures of scenario on primaries. A run's
// shards are ordered by their CPU before the medians are taken, so CPU[0]
// is the median of each run's busiest shard.
func shardMedians(rep *ShardsReport, primaries int, scenario string) shardFigures {
	f := shardFigures{Processes: map[string]float64{}}
	cpu := make([][]float64, primaries)
	cmds := make([][]float64, primaries)
	mem := make([][]float64, primaries)
	var ops, rate []float64
	procs := map[string][]float64{}
	for _, r := range rep.Runs {
		if r.Primaries != primaries || r.Scenario != scenario || r.Result == nil || len(r.Shards) != primaries {
			continue
		}
		n := shardOps(scenario, *r.Result)
		if n <= 0 {
			continue
		}
		f.Runs++
		ops, rate = append(ops, float64(n)), append(rate, shardRate(scenario, *r.Result))
		shards := slices.Clone(r.Shards)
		slices.SortFunc(shards, func(a, b ShardUsage) int { return int(b.CPU - a.CPU) })
		for i, s := range shards {
			cpu[i] = append(cpu[i], micros(s.CPU, n))
			cmds[i] = append(cmds[i], float64(s.Commands)/float64(n))
			if r.Result.Connected > 0 {
				mem[i] = append(mem[i], float64(s.PeakMem)/float64(r.Result.Connected))
			}
		}
		for _, c := range r.Costs {
			procs[c.Process] = append(procs[c.Process], c.CPUMicros)
		}
	}
	if f.Runs == 0 {
		return f
	}
	f.Ops, f.OpsPerS = Median(ops), Median(rate)
	for i := range primaries {
		f.CPU = append(f.CPU, Median(cpu[i]))
		f.Commands = append(f.Commands, Median(cmds[i]))
		f.Memory = append(f.Memory, Median(mem[i]))
	}
	for p, v := range procs {
		f.Processes[p] = Median(v)
	}
	return f
}

// netBroadcast takes the connects off the broadcast figures: per shard the
// connect scenario's CPU per session times the sessions of a broadcast run,
// spread over its deliveries.
func netBroadcast(b, c shardFigures, members float64) shardFigures {
	if b.Runs == 0 || c.Runs == 0 || b.Ops <= 0 {
		return b
	}
	n := b
	n.CPU = slices.Clone(b.CPU)
	for i := range n.CPU {
		if i < len(c.CPU) {
			n.CPU[i] = max(0, b.CPU[i]-c.CPU[i]*members/b.Ops)
		}
	}
	slices.SortFunc(n.CPU, func(x, y float64) int { return int(math.Copysign(1, y-x)) })
	return n
}

// busiestPartitions is the share of the partitions on the busiest of n
// shards when p partitions spread evenly over the slots: ⌈p/n⌉/p.
func busiestPartitions(p, n int) float64 {
	return float64((p+n-1)/n) / float64(p)
}

// renderShards renders the shards section, markers included.
func renderShards(rep *ShardsReport) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n## Redis Cluster: what each shard spends\n\n", shardsBegin)
	w("Two clusters side by side on this machine, each a Redis Cluster of its own (primaries only, the 16384 slots split\n")
	w("evenly, `cluster-require-full-coverage no`), one gateway and one echo worker with their default flags (%d\n", shardsPartitions)
	w("partitions; `-redis` the cluster URL): one on **1 primary** (every slot), one on **3 primaries**. Three scenarios run\n")
	w("against each in alternation, %d rounds: echo (websocket, closed loop, per ack), connect (the clients connect, then\n", rep.RunsPer)
	w("all close: per session) and broadcast (room members, one send every 100 ms: per delivery, with the connect\n")
	w("scenario's CPU per session times the members taken off). Per shard: CPU (user + system) from `INFO cpu`,\n")
	w("commands from `INFO stats` (`total_commands_processed`: what clients sent, a script once) and the peak of\n")
	w("`used_memory` during the broadcast run over its members. A run's shards are sorted by CPU before the medians, so\n")
	w("*shard 1* is the median of each run's busiest shard.\n\n")
	w("```sh\n%s\n```\n\n", rep.Command)
	w("Run %s – %s UTC; load average before / after: %s / %s.\n\n", rep.Started.Format("2006-01-02 15:04"),
		rep.Finished.Format("15:04"), rep.LoadBefore, rep.LoadAfter)
	for _, n := range rep.Notes {
		w("- %s\n", n)
	}
	if rep.Err != "" {
		w("- The run stopped early: %s\n", escapeCell(rep.Err))
	}
	if len(rep.Notes) > 0 || rep.Err != "" {
		w("\n")
	}
	fig := map[int]map[string]shardFigures{}
	for _, n := range shardTargets {
		fig[n] = map[string]shardFigures{}
		for _, ss := range shardScenarios() {
			fig[n][ss.Name] = shardMedians(rep, n, ss.Name)
		}
	}
	w("| scenario | primaries | runs | ops/s | Redis CPU µs per op, by shard | all shards | busiest shard's share | commands per op, by shard | gateway µs | worker µs |\n")
	w("| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |\n")
	for _, ss := range shardScenarios() {
		for _, n := range shardTargets {
			f := fig[n][ss.Name]
			if ss.Name == "broadcast" {
				f = netBroadcast(f, fig[n]["connect"], broadcastMembers(rep, n))
			}
			if f.Runs == 0 {
				w("| %s | %d | 0 | | | | | | | |\n", ss.Name, n)
				continue
			}
			w("| %s (per %s) | %d | %d | %.0f | %s | %.1f | %.0f%% | %s | %.1f | %.1f |\n", ss.Name, ss.Per, n, f.Runs, f.OpsPerS,
				joinFloats(f.CPU, "%.1f"), f.Total(), 100*f.Busiest(), joinFloats(f.Commands, "%.2f"),
				f.Processes["gateway"], f.Processes["worker"])
		}
	}
	w("\nRedis memory per session (the broadcast run's members), by shard:")
	for _, n := range shardTargets {
		if f := fig[n]["broadcast"]; f.Runs > 0 {
			w(" %d primaries %s bytes;", n, joinFloats(f.Memory, "%.0f"))
		}
	}
	w("\n\n")
	renderShardModel(&b, rep, fig)
	w("\n<details>\n<summary>Every shards run</summary>\n\n")
	w("| primaries | scenario | run | connected | errors | ops | ops/s | CPU ms by shard | commands by shard |\n")
	w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, r := range rep.Runs {
		if r.Result == nil {
			w("| %d | %s | %d | failed: %s | | | | | |\n", r.Primaries, r.Scenario, r.Index, escapeCell(r.Err))
			continue
		}
		var cpu, cmds []string
		for _, s := range r.Shards {
			cpu = append(cpu, fmt.Sprintf("%.1f", float64(s.CPU.Microseconds())/1000))
			cmds = append(cmds, strconv.FormatInt(s.Commands, 10))
		}
		w("| %d | %s | %d | %d/%d | %d | %d | %.0f | %s | %s |\n", r.Primaries, r.Scenario, r.Index, r.Result.Connected,
			r.Result.Clients, r.Result.Errors, shardOps(r.Scenario, *r.Result), shardRate(r.Scenario, *r.Result),
			strings.Join(cpu, " / "), strings.Join(cmds, " / "))
	}
	w("\n</details>\n%s\n", shardsEnd)
	return b.String()
}

// broadcastMembers is the median of the broadcast runs' connected clients
// on primaries.
func broadcastMembers(rep *ShardsReport, primaries int) float64 {
	var c []float64
	for _, r := range rep.Runs {
		if r.Primaries == primaries && r.Scenario == "broadcast" && r.Result != nil {
			c = append(c, float64(r.Result.Connected))
		}
	}
	return Median(c)
}

// renderShardModel writes the capacity model: from the measured figures,
// what one shard's core carries and what N shards carry.
func renderShardModel(b *strings.Builder, rep *ShardsReport, fig map[int]map[string]shardFigures) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	three := fig[3]
	echo, conn := three["echo"], three["connect"]
	bc := netBroadcast(three["broadcast"], conn, broadcastMembers(rep, 3))
	if echo.Runs == 0 || conn.Runs == 0 || bc.Runs == 0 || fig[1]["echo"].Runs == 0 {
		w("No model: a scenario has no measured run.\n")
		return
	}
	w("### A model: what N shards carry\n\n")
	w("On paper, from the 3-primary figures above (this machine has 2 cores, so more shards cannot be measured here).\n")
	w("Assumptions: each shard is a primary with a core of its own; a client event touches one partition, so its\n")
	w("Redis cost does not grow with the number of shards (the figures of all three shards together, %.1f µs per echo\n", echo.Total())
	w("ack, against %.1f µs on one primary: a primary of a bigger cluster pays the cluster's own work too, which the\n", fig[1]["echo"].Total())
	w("3-primary figure includes); sessions, and so events, spread evenly over the %d partitions, and the partitions\n", shardsPartitions)
	w("over the shards, so the busiest of N shards carries ⌈%d/N⌉/%d of the work (with `-partitions` above N the\n", shardsPartitions, shardsPartitions)
	w("spread is finer; past %d shards the default partitions cannot use more); a shard saturates at one core. Then\n", shardsPartitions)
	w("the cluster carries, per second, 10⁶ µs ÷ (cost per operation of all shards × the busiest shard's share), and\n")
	w("holds, in a shard of M bytes, M ÷ (%.0f bytes per session, the three shards' figures summed, × the busiest share)\n", 3*avg(three["broadcast"].Memory))
	w("sessions. Measured busiest share at 3 primaries: %.0f%% of the echo CPU (⌈16/3⌉/16 = %.0f%% expected).\n\n",
		100*echo.Busiest(), 100*busiestPartitions(shardsPartitions, 3))
	w("The measured rows divide by the busiest shard's own figures; the others by the 3-primary totals times the share.\n\n")
	w("| shards N | busiest share | echo acks/s | connects + closes/s | broadcast deliveries/s | sessions per 1 GiB of shard memory |\n")
	w("| ---: | ---: | ---: | ---: | ---: | ---: |\n")
	// A session's bytes in all shards together, and what the busiest holds.
	mem := avg(three["broadcast"].Memory) * 3
	one := fig[1]
	oneBc := netBroadcast(one["broadcast"], one["connect"], broadcastMembers(rep, 1))
	w("| 1 (measured) | 100%% | %s | %s | %s | %s |\n", perSecond(one["echo"].CPU[0]), perSecond(one["connect"].CPU[0]),
		perSecond(oneBc.CPU[0]), sessionsPer(one["broadcast"].Memory[0], 1))
	w("| 3 (measured) | %.0f%% | %s | %s | %s | %s |\n", 100*echo.Busiest(), perSecond(echo.CPU[0]), perSecond(conn.CPU[0]),
		perSecond(bc.CPU[0]), sessionsPer(three["broadcast"].Memory[0], 1))
	for _, n := range []int{4, 8, 16} {
		share := busiestPartitions(shardsPartitions, n)
		w("| %d | %.0f%% | %s | %s | %s | %s |\n", n, 100*share, perSecond(echo.Total()*share), perSecond(conn.Total()*share),
			perSecond(bc.Total()*share), sessionsPer(mem, share))
	}
	w("\nGateways and workers scale out beside the shards and are not in this model (their CPU per operation is in the\n")
	w("table above); a cluster of N shards needs enough of them to send those events.\n")
}

func avg(v []float64) float64 {
	var s float64
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// perSecond formats 10⁶ µs ÷ cost (µs per operation) as operations per
// second, rounded to two significant digits.
func perSecond(costMicros float64) string {
	if costMicros <= 0 || math.IsNaN(costMicros) {
		return "—"
	}
	return roughly(1e6 / costMicros)
}

// sessionsPer formats how many sessions 1 GiB of the busiest shard holds
// when the cluster spends bytes per session, share of it on that shard.
func sessionsPer(bytes, share float64) string {
	if bytes <= 0 || math.IsNaN(bytes) {
		return "—"
	}
	return roughly(float64(1<<30) / (bytes * share))
}

// roughly rounds v to two significant digits, with a thousands separator.
func roughly(v float64) string {
	if v <= 0 {
		return "0"
	}
	mag := math.Pow(10, math.Floor(math.Log10(v))-1)
	r := int64(math.Round(v/mag) * mag)
	s := strconv.FormatInt(r, 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func joinFloats(v []float64, format string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " / ")
}

// spliceShards puts section (markers included) in place of the shards
// section of report (see spliceSection).
func spliceShards(report, section string) string {
	return spliceSection(report, section, shardsBegin, shardsEnd)
}

// runShardsOnly runs the shards scenario alone and writes its section into
// the report at -out, leaving the rest of the report as it was.
func runShardsOnly(ctx context.Context, o options, args []string) error {
	logDir, err := os.MkdirTemp("", "benchrun-logs-")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchrun: logs of the servers in %s\n", logDir)
	rep := runShards(ctx, o, logDir)
	rep.Command = "make build && bin/benchrun " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %s", rep.Err)
	}
	if rep.Err == "" {
		_ = os.RemoveAll(logDir)
	}
	old, err := os.ReadFile(o.out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := renderShards(rep)
	if err := os.WriteFile(o.out, []byte(spliceShards(string(old), section)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchrun: wrote the shards section of %s\n", o.out)
	fmt.Print(section)
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	return nil
}
