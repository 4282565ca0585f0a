// Command benchrun benchmarks the cluster against the reference Socket.IO
// 0.9 server (npm socket.io@0.9.19, test/reference/echo-server.js) on the
// same machine, in the same run, and writes BENCHMARKS.md with a table of
// medians and ratios, the targets, the raw runs, a plot of the ratios
// and the codec and commit-script micro-benchmarks.
//
// It lives in the tools module (tools/, its own go.mod) and runs from the
// repository root after `make build test-deps`, which builds it into bin/
// with the other commands (`make bench` does both and runs it):
//
//	bin/benchrun                          # the full benchmark (7 to 10 minutes on 2 cores)
//	bin/benchrun -quick                   # a smoke run: 1 run each, small client counts
//	bin/benchrun -scenarios echo,connect -runs 3
//	make bench BENCHFLAGS=-quick          # the same smoke run, building first
//	bin/benchrun -baseline 64b3d19        # also against the cluster of commit 64b3d19
//
// It starts its own redis-server on a free loopback port, one gateway
// (bin/gateway) and one echo worker (bin/worker -app echo) — the cluster —
// and the reference Node server, all on 127.0.0.1, and waits until each is
// ready (the gateway's and worker's /readyz, the reference's "listening"
// line). For each scenario it runs bin/siobench -json against the cluster
// and the reference in alternation (cluster, reference, cluster, …), -runs
// times each, and parses siobench's Result. The connect scenario restarts the
// measured server (the gateway, resp. the Node process) before each run and
// passes its pid, so RSS per connection is measured from a fresh process.
// Everything it started is stopped at the end, on error and on Ctrl-C.
//
// The baseline. To show that a change to the cluster costs no more than it
// should, benchrun runs a third target, the baseline: the cluster built from
// another commit. -baseline REV builds it: `git archive` of the commit REV
// names (in the repository of the current directory) unpacked into a
// temporary directory, then `go build -o DIR/bin/ ./cmd/gateway ./cmd/worker`
// there; the directory is removed at the end. No worktree is registered, so
// an interrupted run leaves nothing behind in the repository.
// -baseline-bin DIR takes a gateway and a worker built already (named in
// the report by the commit Go stamped into them, if any). The baseline gets
// what the cluster gets, from its own processes: a redis-server, a gateway
// and an echo worker with the same flags, a second gateway and a haproxy
// for the polling scenario, a restarted gateway before each connect run.
// The targets alternate cluster, baseline, reference, cluster, … and the
// report gains a section "Against the baseline (REV)": the medians of both,
// the ratios cluster/baseline, and a line saying, from those medians,
// whether echo acks/s and broadcast p99 latency are within 5% of the
// baseline's (the metrics' Tolerance). Without a baseline the report is as
// before. The baseline's binaries must accept the flags benchrun passes.
// The hold run stays the cluster's alone.
//
// Flags (defaults in brackets):
//
//	-runs N         runs per target and scenario [5]
//	-big-runs N     runs per target of the 10,000-client scenario, at most -runs [3]
//	-duration D     length of each timed run (echo, polling, broadcast) [5s]
//	-scenarios L    comma-separated: echo, polling, broadcast-1k, broadcast-10k, connect, hold [all];
//	                also bridge (bridge.go; not in the default set: it needs Django and gunicorn)
//	                and shards (shards.go; run alone: Redis Cluster on 1 and 3 primaries, per shard)
//	-python, -gunicorn, -django-project   the bridge scenario's [/usr/bin/python3, /usr/bin/gunicorn, examples/django]
//	-out FILE       the report [BENCHMARKS.md; with -quick: a temporary file]
//	-plot FILE      the ratio plot, SVG or PNG by extension [bench/ratios.svg next to -out]
//	-codec          also run the micro-benchmarks (codec: ./pkg/protocol, ./pkg/bus; scripts: ./pkg/session) with -benchmem [true]
//	-quick          smoke run: 1 run, 2s, a tenth of the clients; not for publishing
//	-baseline REV   also run the cluster built from git revision REV, as the baseline [none]
//	-baseline-bin DIR  also run DIR/gateway and DIR/worker, as the baseline [none]
//	-bin, -node, -redis-server, -reference   where the programs are [bin, node, redis-server, test/reference/echo-server.js]
//
// A scenario with more clients than the open-file limit allows raises the
// soft limit to the hard one (children inherit it); if that is not enough it
// is skipped with the reason in the report. An "Analysis" section between
// the markers <!-- analysis:begin --> and <!-- analysis:end --> is kept from
// the previous report, so maintainers can write it and rerun the tool.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The targets: the cluster (bin/), the baseline (the cluster built from
// another commit, with -baseline or -baseline-bin) and the reference.
const (
	targetCluster   = "cluster"
	targetBaseline  = "baseline"
	targetReference = "reference"
	// targetCeiling is the echo scenario's fourth target: a bare websocket
	// echo (bin/wsecho: gorilla/websocket, no Socket.IO, no Redis) that
	// siobench drives with -scenario ws-echo, the most this machine does.
	targetCeiling = "ceiling"
)

// ceilingScenario is the scenario whose runs also go to the ceiling.
const ceilingScenario = "echo"

// options are benchrun's flags.
type options struct {
	runs, bigRuns int
	duration      time.Duration
	scenarios     []string
	out, plot     string
	codec, quick  bool
	baselineRev   string // -baseline: build the baseline from this revision
	paths         Paths  // paths.BaselineBin: -baseline-bin
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun: error:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	var o options
	var names []string
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	names = append(names, holdScenario)
	defaults := strings.Join(names, ",")
	names = append(names, bridgeScenario) // needs Django: only when asked for
	names = append(names, shardsScenario) // runs alone: only when asked for
	fs.IntVar(&o.runs, "runs", 5, "runs per target and scenario")
	fs.IntVar(&o.bigRuns, "big-runs", 3, "runs per target of the 10,000-client scenario (at most -runs)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each timed run (echo, polling, broadcast)")
	list := fs.String("scenarios", defaults, "comma-separated scenarios to run (also: "+bridgeScenario+", which needs Django and gunicorn, and "+shardsScenario+", Redis Cluster per shard, run alone)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "the report to write (with -quick and no -out: a temporary file)")
	fs.StringVar(&o.plot, "plot", "", "the ratio plot, .svg or .png (default: bench/ratios.svg next to -out)")
	fs.BoolVar(&o.codec, "codec", true, "also run the micro-benchmarks: the codec's and the commit scripts' (go test -bench . -benchmem ./pkg/protocol ./pkg/bus ./pkg/session)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1 run, 2s runs, a tenth of the clients")
	fs.StringVar(&o.paths.Bin, "bin", "bin", "directory of gateway, worker and siobench (make build)")
	fs.StringVar(&o.baselineRev, "baseline", "", "a git revision of this repository: build its gateway and worker into a temporary directory and run them as a third target, the baseline")
	fs.StringVar(&o.paths.BaselineBin, "baseline-bin", "", "a directory holding a gateway and a worker built from another commit, run as a third target, the baseline")
	fs.StringVar(&o.paths.Node, "node", "node", "the node executable")
	fs.StringVar(&o.paths.RedisServer, "redis-server", "redis-server", "the redis-server executable")
	fs.StringVar(&o.paths.Reference, "reference", "test/reference/echo-server.js", "the reference server script (make test-deps)")
	fs.StringVar(&o.paths.HAProxy, "haproxy", "haproxy", "the haproxy executable (the polling scenario runs through it)")
	fs.StringVar(&o.paths.LBConfig, "haproxy-config", "deploy/haproxy/haproxy.cfg", "the haproxy configuration the load balancers derive from")
	fs.StringVar(&o.paths.Python, "python", "/usr/bin/python3", "the bridge scenario: a python3 with Django (Debian's python3-django)")
	fs.StringVar(&o.paths.Gunicorn, "gunicorn", "/usr/bin/gunicorn", "the bridge scenario: gunicorn (Debian's gunicorn)")
	fs.StringVar(&o.paths.DjangoProject, "django-project", "examples/django", "the bridge scenario: the Django project gunicorn serves")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range strings.Split(*list, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !slices.Contains(names, n) {
			return o, fmt.Errorf("unknown scenario %q (want some of %s)", n, strings.Join(names, ", "))
		}
		o.scenarios = append(o.scenarios, n)
	}
	if o.quick {
		if !set["runs"] {
			o.runs = 1
		}
		if !set["big-runs"] {
			o.bigRuns = 1
		}
		if !set["duration"] {
			o.duration = 2 * time.Second
		}
		if !set["out"] {
			dir, err := os.MkdirTemp("", "benchrun-quick-")
			if err != nil {
				return o, err
			}
			o.out = filepath.Join(dir, "BENCHMARKS.md")
		}
	}
	if o.baselineRev != "" && o.paths.BaselineBin != "" {
		return o, errors.New("-baseline and -baseline-bin are exclusive: give one")
	}
	if o.runs < 1 || o.bigRuns < 1 {
		return o, errors.New("-runs and -big-runs must be at least 1")
	}
	if o.plot == "" {
		o.plot = filepath.Join(filepath.Dir(o.out), "bench", "ratios.svg")
	}
	return o, nil
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	for _, b := range []string{"gateway", "worker", "siobench"} {
		if _, err := os.Stat(filepath.Join(o.paths.Bin, b)); err != nil {
			return fmt.Errorf("%s: %w (run make build first)", filepath.Join(o.paths.Bin, b), err)
		}
	}
	bridge := slices.Contains(o.scenarios, bridgeScenario)
	if bridge {
		if err := checkDjango(o.paths.Python, o.paths.Gunicorn); err != nil {
			return err
		}
	}
	if bridge && len(o.scenarios) == 1 {
		return runBridgeOnly(o, args)
	}
	if slices.Contains(o.scenarios, shardsScenario) {
		if len(o.scenarios) > 1 {
			return fmt.Errorf("the %s scenario runs alone (-scenarios %s): it writes its own section of the report", shardsScenario, shardsScenario)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return runShardsOnly(ctx, o, args)
	}
	if _, err := os.Stat(filepath.Join(o.paths.Bin, "wsecho")); err != nil {
		return fmt.Errorf("%s: %w (the echo scenario's ceiling; run make build first)", filepath.Join(o.paths.Bin, "wsecho"), err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(o.paths.Reference)), "node_modules", "socket.io")); err != nil {
		return fmt.Errorf("socket.io is not installed next to %s (run make test-deps first): %w", o.paths.Reference, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep := &Report{Quick: o.quick, Runs: o.runs, BigRuns: min(o.bigRuns, o.runs), Duration: o.duration, Started: time.Now().UTC()}
	rep.Machine = machineFacts(o.paths)
	if load := busyNote(rep.Machine.LoadBefore, rep.Machine.CPUs); load != "" {
		rep.Notes = append(rep.Notes, load)
		fmt.Fprintln(os.Stderr, "benchrun:", load)
	}
	// Built after the load average was read: the build is ours.
	switch {
	case o.baselineRev != "":
		dir, err := os.MkdirTemp("", "benchrun-baseline-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "benchrun: building the baseline %s in %s\n", o.baselineRev, dir)
		if rep.Baseline, err = buildBaseline(ctx, o.baselineRev, dir); err != nil {
			return err
		}
		o.paths.BaselineBin = rep.Baseline.Bin
	case o.paths.BaselineBin != "":
		if rep.Baseline, err = describeBaselineBin(ctx, o.paths.BaselineBin); err != nil {
			return err
		}
	}
	if rep.Baseline != nil {
		fmt.Fprintf(os.Stderr, "benchrun: baseline %s: %s\n", rep.Baseline.Label(), rep.Baseline.Subject)
	}

	rep.Command = "make bench"
	if len(args) > 0 {
		rep.Command = "make build test-deps && bin/benchrun " + strings.Join(args, " ")
	}
	// Raise the open-file limit before starting any server: they inherit it.
	need := uint64(0)
	for _, sc := range Scenarios() {
		if slices.Contains(o.scenarios, sc.Name) {
			need = max(need, filesNeeded(sc.Clients))
		}
	}
	if slices.Contains(o.scenarios, holdScenario) {
		need = max(need, uint64(holdTarget+holdGWHeadway))
	}
	files, err := raiseFileLimit(need)
	if err != nil || files < need {
		msg := fmt.Sprintf("The open-file limit is %d; the largest scenario needs %d per process", files, need)
		if err != nil {
			msg += " (raising it failed: " + err.Error() + ")"
		}
		fmt.Fprintln(os.Stderr, "benchrun:", msg)
		rep.Notes = append(rep.Notes, msg+".")
	}
	rep.Machine.Files = files
	logDir, err := os.MkdirTemp("", "benchrun-logs-")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchrun: logs of the servers in %s\n", logDir)
	srv, err := startServers(ctx, o.paths, logDir)
	if err != nil {
		return err
	}
	runErr := runScenarios(ctx, o, srv, rep, files)
	if runErr == nil && ctx.Err() == nil && slices.Contains(o.scenarios, holdScenario) {
		fmt.Fprintln(os.Stderr, "benchrun: hold: websockets held on one gateway with heartbeats running")
		rep.Hold = runHold(ctx, o, srv, files)
		fmt.Fprintf(os.Stderr, "benchrun: hold: %d of %d held, %d dropped, %d connect errors %s\n",
			rep.Hold.Connected, rep.Hold.Clients, rep.Hold.Dropped, rep.Hold.Errors, rep.Hold.Err+rep.Hold.Skipped)
	}
	srv.stopAll()
	if runErr == nil && ctx.Err() == nil && bridge {
		fmt.Fprintln(os.Stderr, "benchrun: bridge: echo through worker -app http to Django under gunicorn, beside the Go echo worker")
		rep.Bridge = runBridge(ctx, o, logDir)
		rep.Bridge.Command = rep.Command
	}
	if runErr == nil {
		_ = os.RemoveAll(logDir)
	} else if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", runErr)
	}
	if runErr != nil {
		rep.Notes = append(rep.Notes, "The run stopped early: "+runErr.Error())
	}
	if o.codec && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "benchrun: micro-benchmarks (go test -bench . -benchmem ./pkg/protocol ./pkg/bus ./pkg/session)")
		rep.Codec, rep.CodecCmd = codecBench(ctx, o.quick)
	}
	rep.Finished = time.Now().UTC()
	rep.Machine.LoadAfter = loadAverage()
	if err := writeReport(o.out, o.plot, rep); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchrun: wrote %s and %s\n", o.out, o.plot)
	fmt.Print(renderTable(rep))
	if rep.Baseline != nil {
		fmt.Print("\n" + renderBaselineTable(rep) + "\n" + baselineVerdict(rep) + "\n")
	}
	return runErr
}

// runBridgeOnly runs the bridge scenario alone and writes its section into
// the report at -out, leaving the rest of the report as it was.
func runBridgeOnly(o options, args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logDir, err := os.MkdirTemp("", "benchrun-logs-")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchrun: logs of the servers in %s\n", logDir)
	rep := runBridge(ctx, o, logDir)
	rep.Command = "make build && bin/benchrun " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %s", rep.Err)
	}
	if rep.Err == "" {
		_ = os.RemoveAll(logDir)
	}
	if err := writeBridgeOnly(o.out, rep, o.runs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchrun: wrote the bridge section of %s\n", o.out)
	fmt.Print(renderBridge(rep, o.runs))
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	return nil
}

// runScenarios runs each selected scenario, alternating the targets, and
// appends the runs to rep. It stops at a dead server or on ctx.
func runScenarios(ctx context.Context, o options, srv *servers, rep *Report, files uint64) error {
	for _, sc := range Scenarios() {
		if !slices.Contains(o.scenarios, sc.Name) {
			continue
		}
		clients := sc.Clients
		if o.quick {
			clients = sc.QuickClients
		}
		runs := o.runs
		if sc.Big {
			runs = min(o.runs, o.bigRuns)
		}
		sr := &ScenarioReport{Scenario: sc, Clients: clients, Args: sc.Args(clients, o.duration)}
		rep.Scenarios = append(rep.Scenarios, sr)
		if sc.LB {
			if err := srv.startLB(ctx); errors.Is(err, errNoHAProxy) {
				sr.Skipped = err.Error()
				fmt.Fprintf(os.Stderr, "benchrun: %s skipped: %s\n", sc.Name, sr.Skipped)
				continue
			} else if err != nil {
				return fmt.Errorf("load balancers: %w", err)
			}
		}
		if need := filesNeeded(clients); need > files {
			sr.Skipped = fmt.Sprintf("needs an open-file limit of %d per process; it is %d (ulimit -n) and could not be raised: raise ulimit -Hn", need, files)
			fmt.Fprintf(os.Stderr, "benchrun: %s skipped: %s\n", sc.Name, sr.Skipped)
			continue
		}
		targets := srv.targets()
		if sc.Name == ceilingScenario {
			targets = append(targets, targetCeiling)
		}
		for i := range runs {
			for _, target := range targets {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := srv.check(); err != nil {
					return err
				}
				r := RunRecord{Target: target, Index: i + 1}
				if sc.PID {
					// The reference listens on a new port after this.
					if err := srv.restart(ctx, target); err != nil {
						return err
					}
				}
				args := append([]string{"-url", srv.url(sc, target)}, sr.Args...)
				if target == targetCeiling {
					args = ceilingArgs(args)
				}
				if sc.PID {
					args = append(args, "-pid", fmt.Sprint(srv.pid(target)))
				}
				var meter *costMeter
				if sc.Costs {
					meter = startCosts(srv.procs(sc, target))
				}
				res, client, err := siobench(ctx, o.paths.Bin, sc, clients, o.duration, args)
				if err != nil {
					r.Err = err.Error()
				} else {
					r.Result = &res
					if meter != nil {
						r.Costs = meter.finish(res.Ops, client)
					}
				}
				sr.Runs = append(sr.Runs, r)
				fmt.Fprintf(os.Stderr, "benchrun: %s %s run %d/%d: %s\n", sc.Name, target, i+1, runs, r.Summary(sc))
			}
		}
	}
	return nil
}

// siobench runs bin/siobench with args and parses its -json summary; it
// also returns the CPU time siobench used.
func siobench(ctx context.Context, bin string, sc Scenario, clients int, d time.Duration, args []string) (Result, time.Duration, error) {
	// Connecting runs at a few hundred clients a second on 2 cores; give
	// the run plenty beyond that before calling it hung.
	limit := 2*time.Minute + time.Duration(clients)*20*time.Millisecond
	if sc.Timed {
		limit += d
	}
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(rctx, filepath.Join(bin, "siobench"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if rctx.Err() == context.DeadlineExceeded {
		return Result{}, 0, fmt.Errorf("siobench did not finish within %s: %s", limit, lastLines(stderr.String(), 3))
	}
	if err != nil {
		return Result{}, 0, fmt.Errorf("siobench: %v: %s", err, lastLines(stderr.String(), 3))
	}
	var res Result
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		return Result{}, 0, fmt.Errorf("siobench printed no JSON summary (%v): %q", err, lastLines(stdout.String(), 3))
	}
	return res, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// busyNote warns when the machine was busy before the run: a 1-minute load
// average of half the CPUs or more.
func busyNote(loadavg string, cpus int) string {
	f := strings.Fields(loadavg)
	if len(f) == 0 {
		return ""
	}
	l, err := strconv.ParseFloat(f[0], 64)
	if err != nil || l < float64(cpus)/2 {
		return ""
	}
	return fmt.Sprintf("The 1-minute load average was %s on %d CPUs before the run: other processes were using the machine, so these numbers are noisier than on an idle one.", f[0], cpus)
}

// lastLines returns the last n non-empty lines of s joined by " | ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// filesPerClient is the open-file headroom a process needs beyond one
// descriptor per client (listeners, Redis connections, the handshakes in
// flight, the HTTP client's idle pool).
const filesPerClient, fileHeadroom = 1, 1024

// raiseFileLimit raises this process's open-file limit so that need
// descriptors fit: the soft limit to the hard one, and the hard one too when
// it is lower and the process may (root). Children started afterwards
// inherit it. It returns the soft limit in force.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	want := lim
	want.Cur = lim.Max
	if lim.Max < need {
		want = syscall.Rlimit{Cur: need, Max: need}
	}
	// Setting it explicitly (even unchanged) also stops os/exec from
	// handing the children the soft limit the Go runtime started with.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want.Cur, want.Max = lim.Max, lim.Max
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err2 != nil {
			return lim.Cur, err2
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// filesNeeded is the open-file limit a run with clients connections needs in
// each of its processes (siobench and the server each hold one per client).
func filesNeeded(clients int) uint64 {
	return uint64(clients)*filesPerClient + fileHeadroom
}

// codecBench runs the micro-benchmarks (the codec's, and the commit
// scripts' against a redis-server of their own) and returns their output
// and the command.
func codecBench(ctx context.Context, quick bool) (string, string) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "./pkg/protocol", "./pkg/bus", "./pkg/session"}
	if quick {
		args = append(args, "-benchtime", "100ms")
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	out, err := cmd.CombinedOutput()
	text := strings.TrimRight(string(out), "\n")
	if err != nil {
		text += "\n(failed: " + err.Error() + ")"
	}
	return text, "go " + strings.Join(quoteArgs(args), " ")
}

// quoteArgs single-quotes arguments a shell would mangle.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$*?[] ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

// ceilingArgs returns siobench's arguments for the ceiling: the same, with
// -scenario ws-echo.
func ceilingArgs(args []string) []string {
	out := slices.Clone(args)
	for i := range len(out) - 1 {
		if out[i] == "-scenario" {
			out[i+1] = "ws-echo"
		}
	}
	return out
}
