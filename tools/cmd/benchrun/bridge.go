package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/realtime/realtime/internal/freeport"
)

// The bridge run measures what the HTTP bridge costs: the echo scenario
// (websocket, closed loop) through `worker -app http` to the Django
// project examples/django (its echo app, written with the django-realtime
// API of python/django-realtime) served by Debian's gunicorn with
// bridgeGunicornWorkers sync workers, side by side with the Go echo worker
// (`worker -app echo`) in the same run. Each target is a cluster of its
// own (redis-server, one gateway, one worker; the bridge's also gunicorn),
// and the runs alternate Go, bridge, Go, … as the other scenarios
// alternate their targets. CPU per ack is measured for every process:
// gateway, worker, redis-server, the gunicorn arbiter and each of its
// workers.
//
// It needs Python with Django and gunicorn (-python, -gunicorn; Debian's
// python3-django and gunicorn), so it is not in the default -scenarios:
// asked for without them, benchrun fails and says what is missing.
//
// Run alone (-scenarios bridge), it rewrites only its own section of the
// report (between bridgeBegin and bridgeEnd); a full run without it keeps
// that section from the previous report.

// bridgeScenario is the bridge run's name in -scenarios.
const bridgeScenario = "bridge"

// The bridge run's targets.
const (
	targetGoEcho = "go-echo"
	targetBridge = "bridge"
)

// bridgeGunicornWorkers is gunicorn's -w: a few sync workers, each serving
// one bridge request at a time.
const bridgeGunicornWorkers = 4

// bridgeSecret signs the bridge's requests (both ends are ours).
const bridgeSecret = "benchrun-bridge-secret"

// Markers around the bridge section of the report.
const (
	bridgeBegin = "<!-- bridge:begin -->"
	bridgeEnd   = "<!-- bridge:end -->"
)

// BridgeReport is the outcome of the bridge run.
type BridgeReport struct {
	Clients         int
	Args            []string // siobench arguments besides -url
	Runs            []RunRecord
	GunicornWorkers int
	Command         string // how to run it again
	Started         time.Time
	Finished        time.Time
	LoadBefore      string
	LoadAfter       string
	Notes           []string
	Err             string // why it stopped early, or ""
}

// checkDjango returns an error saying what is missing unless python
// imports Django and gunicorn runs.
func checkDjango(python, gunicorn string) error {
	if out, err := exec.Command(python, "-c", "import django").CombinedOutput(); err != nil {
		return fmt.Errorf("the bridge scenario needs Django for %s (apt-get install python3-django): %v: %s",
			python, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command(gunicorn, "--version").CombinedOutput(); err != nil {
		return fmt.Errorf("the bridge scenario needs gunicorn at %s (apt-get install gunicorn): %v: %s",
			gunicorn, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// bridgeCluster is the bridge target: a cluster whose worker bridges to
// gunicorn.
type bridgeCluster struct {
	*cluster
	gunicorn *proc
}

// runBridge starts both targets, runs the echo scenario against them in
// alternation and stops them. An error that ends the run early is kept in
// the report's Err with the runs made until then.
func runBridge(ctx context.Context, o options, logDir string) *BridgeReport {
	sc := bridgeEcho()
	clients := sc.Clients
	if o.quick {
		clients = sc.QuickClients
	}
	rep := &BridgeReport{Clients: clients, Args: sc.Args(clients, o.duration), GunicornWorkers: bridgeGunicornWorkers,
		Started: time.Now().UTC(), LoadBefore: loadAverage()}
	if note := busyNote(rep.LoadBefore, runtime.NumCPU()); note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	err := bridgeRuns(ctx, o, logDir, sc, rep)
	if err != nil {
		rep.Err = err.Error()
	}
	rep.Finished, rep.LoadAfter = time.Now().UTC(), loadAverage()
	return rep
}

// bridgeEcho is the echo scenario as the bridge run uses it.
func bridgeEcho() Scenario {
	sc := Scenarios()[0]
	sc.Metrics = echoMetrics(nil, nil, nil)
	return sc
}

func bridgeRuns(ctx context.Context, o options, logDir string, sc Scenario, rep *BridgeReport) error {
	goDir, brDir := filepath.Join(logDir, targetGoEcho), filepath.Join(logDir, targetBridge)
	for _, d := range []string{goDir, brDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	goC := &cluster{target: targetGoEcho, bin: o.paths.Bin, redisServer: o.paths.RedisServer, logDir: goDir}
	defer goC.stop()
	if err := goC.start(ctx); err != nil {
		return fmt.Errorf("go echo cluster: %w", err)
	}
	br, err := startBridgeCluster(ctx, o, brDir)
	if br != nil {
		defer br.stop()
	}
	if err != nil {
		return fmt.Errorf("bridge cluster: %w", err)
	}
	for i := range o.runs {
		for _, target := range []string{targetGoEcho, targetBridge} {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, procs := goC, goC.procs(false)
			if target == targetBridge {
				c = br.cluster
				procs = append(br.procs(false), br.gunicorn)
			}
			for _, p := range procs {
				if p.exited() {
					return p.failure(errors.New("exited during the benchmark"))
				}
			}
			refs := pidRefs(procs)
			if target == targetBridge {
				refs = append(refs, gunicornWorkers(br.gunicorn.pid())...)
			}
			meter := startCostsOf(refs)
			r := RunRecord{Target: target, Index: i + 1}
			res, client, err := siobench(ctx, o.paths.Bin, sc, rep.Clients, o.duration, append([]string{"-url", c.gatewayURL}, rep.Args...))
			if err != nil {
				r.Err = err.Error()
			} else {
				r.Result = &res
				r.Costs = meter.finish(res.Ops, client)
			}
			rep.Runs = append(rep.Runs, r)
			fmt.Fprintf(os.Stderr, "benchrun: bridge %s run %d/%d: %s\n", target, i+1, o.runs, r.Summary(sc))
		}
	}
	return nil
}

// startBridgeCluster starts a redis-server, a gateway, gunicorn serving
// examples/django and a `worker -app http` bridged to it. The cluster is
// returned also on error, so that what started can be stopped.
func startBridgeCluster(ctx context.Context, o options, logDir string) (*bridgeCluster, error) {
	port, err := freeport.Loopback()
	if err != nil {
		return nil, err
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/realtime/", port)
	b := &bridgeCluster{cluster: &cluster{target: targetBridge, bin: o.paths.Bin, redisServer: o.paths.RedisServer, logDir: logDir,
		workerApp: []string{"-app", "http", "-http-endpoint", endpoint, "-http-secret", bridgeSecret}}}
	if err := b.startRedis(ctx); err != nil {
		return b, err
	}
	if b.gatewayPort, err = freeport.Loopback(); err != nil {
		return b, err
	}
	if b.gatewayAdmin, err = freeport.Loopback(); err != nil {
		return b, err
	}
	b.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", b.gatewayPort)
	if err := b.startGateway(ctx); err != nil {
		return b, err
	}
	dir, err := filepath.Abs(o.paths.DjangoProject)
	if err != nil {
		return b, err
	}
	env := []string{"REALTIME_SECRET=" + bridgeSecret, "PYTHONDONTWRITEBYTECODE=1",
		"CHAT_DB=" + filepath.Join(logDir, "chat.sqlite3")} // the chat's database: unused by echo
	b.gunicorn, err = startProc(logDir, "gunicorn", dir, env, nil, o.paths.Gunicorn,
		"--workers", fmt.Sprint(bridgeGunicornWorkers), "--bind", fmt.Sprintf("127.0.0.1:%d", port),
		"--log-level", "warning", "--timeout", "30", "--graceful-timeout", "5", "echoproject.wsgi")
	if err != nil {
		return b, err
	}
	err = waitFor(ctx, b.gunicorn, 30*time.Second, func() error {
		if err := httpAnswers(endpoint); err != nil {
			return err
		}
		if n := len(gunicornWorkers(b.gunicorn.pid())); n < bridgeGunicornWorkers {
			return fmt.Errorf("%d of %d gunicorn workers running", n, bridgeGunicornWorkers)
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	return b, b.startWorker(ctx)
}

// stop stops the bridge cluster: gateway, worker, gunicorn, Redis.
func (b *bridgeCluster) stop() {
	b.gateway.stop(10 * time.Second)
	b.worker.stop(10 * time.Second)
	b.gunicorn.stop(10 * time.Second)
	b.redis.stop(5 * time.Second)
}

// stop stops a cluster started for the bridge run.
func (c *cluster) stop() {
	c.gateway.stop(10 * time.Second)
	c.worker.stop(10 * time.Second)
	c.redis.stop(5 * time.Second)
}

// httpAnswers succeeds when url answers any HTTP status (the bridge
// endpoint answers a GET with 405).
func httpAnswers(url string) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// gunicornWorkers returns gunicorn's worker processes (the children of its
// arbiter), named "gunicorn worker 1", … in pid order.
func gunicornWorkers(arbiter int) []pidRef {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil
	}
	all, err := fs.AllProcs()
	if err != nil {
		return nil
	}
	var pids []int
	for _, p := range all {
		if st, err := p.Stat(); err == nil && st.PPID == arbiter {
			pids = append(pids, p.PID)
		}
	}
	slices.Sort(pids)
	refs := make([]pidRef, len(pids))
	for i, pid := range pids {
		refs[i] = pidRef{name: fmt.Sprintf("gunicorn worker %d", i+1), pid: pid}
	}
	return refs
}

// bridgeRow is one metric of the bridge run: the medians of both targets
// and the ratio bridge / Go.
type bridgeRow struct {
	Metric       Metric
	GoEcho       float64
	Bridge       float64
	NGo, NBridge int
	Ratio        float64
}

// bridgeRows computes the medians of the bridge run.
func bridgeRows(rep *BridgeReport) []bridgeRow {
	var rows []bridgeRow
	for _, m := range bridgeEcho().Metrics {
		by := map[string][]float64{}
		for _, r := range rep.Runs {
			if r.Result != nil {
				by[r.Target] = append(by[r.Target], m.Get(*r.Result))
			}
		}
		row := bridgeRow{Metric: m, GoEcho: Median(by[targetGoEcho]), Bridge: Median(by[targetBridge]),
			NGo: len(by[targetGoEcho]), NBridge: len(by[targetBridge])}
		row.Ratio = Ratio(row.Bridge, row.GoEcho)
		rows = append(rows, row)
	}
	return rows
}

// renderBridge renders the bridge section, markers included; runs is the
// planned number of runs per target.
func renderBridge(rep *BridgeReport, runs int) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n## Through the HTTP bridge: Django under gunicorn\n\n", bridgeBegin)
	w("The echo scenario (websocket, closed loop, %d clients) against two clusters side by side on this machine, each\n", rep.Clients)
	w("its own `redis-server` and one gateway: one with the Go echo worker (`bin/worker -app echo`), one with the HTTP\n")
	w("bridge (`bin/worker -app http`) to the Django project [examples/django](examples/django/README.md) (its echo app,\n")
	w("written with the django-realtime API) served by Debian's gunicorn with %d sync workers. Runs alternate\n", rep.GunicornWorkers)
	w("Go, bridge, Go, …, %d per target; each is `bin/siobench -url URL %s`. Medians, and the **ratio\n", runs, strings.Join(rep.Args, " "))
	w("bridge / Go**: below 1 for acks/s and above 1 for latencies is what the bridge costs.\n\n")
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
	w("| metric | better | Go echo worker | bridge to Django | ratio bridge / Go |\n| --- | --- | ---: | ---: | ---: |\n")
	for _, row := range bridgeRows(rep) {
		w("| %s | %s | %s | %s | %s |\n", row.Metric.Name, row.Metric.Better,
			withRuns(row.GoEcho, row.NGo, runs), withRuns(row.Bridge, row.NBridge, runs), formatRatio(row.Ratio))
	}
	if costs := costRows(rep.Runs, []string{targetGoEcho, targetBridge}); costs != "" {
		w("\nWhere the time goes: CPU per ack of each process (medians over the runs, from `/proc`, as in *Where the CPU\n")
		w("goes*; gunicorn's arbiter and each of its workers separately). Python's sockets use recv and send, which\n")
		w("`/proc/<pid>/io` does not count: gunicorn's system-call columns stay near 0 whatever it does.\n\n")
		w("| target | process | CPU µs | read syscalls | write syscalls |\n| --- | --- | ---: | ---: | ---: |\n")
		b.WriteString(costs)
	}
	w("\n<details>\n<summary>Every bridge run</summary>\n\n")
	w("| target | run | connected | errors | acks/s | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rep.Runs {
		if r.Result == nil {
			w("| %s | %d | failed: %s | | | | | |\n", r.Target, r.Index, escapeCell(r.Err))
			continue
		}
		x := r.Result
		w("| %s | %d | %d/%d | %d | %.0f | %.2f | %.2f | %.2f |\n", r.Target, r.Index, x.Connected, x.Clients, x.Errors,
			x.OpsPerS, x.P50ms, x.P99ms, x.MaxMs)
	}
	w("\n</details>\n%s\n", bridgeEnd)
	return b.String()
}

// extractSection returns the text from begin to end (markers included) in
// old, or "" when it has none.
func extractSection(old, begin, end string) string {
	i := strings.Index(old, begin)
	if i < 0 {
		return ""
	}
	j := strings.Index(old[i:], end)
	if j < 0 {
		return ""
	}
	return old[i : i+j+len(end)]
}

// spliceBridge puts section (markers included) in place of the bridge
// section of report (see spliceSection).
func spliceBridge(report, section string) string {
	return spliceSection(report, section, bridgeBegin, bridgeEnd)
}

// spliceSection puts section (markers included) in place of the section
// between begin and end of report, or, when it has none, before its
// Analysis section (else at its end).
func spliceSection(report, section, begin, end string) string {
	if old := extractSection(report, begin, end); old != "" {
		return strings.Replace(report, old, strings.TrimSuffix(section, "\n"), 1)
	}
	if i := strings.Index(report, "## Analysis\n"); i >= 0 {
		return report[:i] + section + "\n" + report[i:]
	}
	return report + "\n" + section
}

// writeBridgeOnly writes the bridge section into the report at out,
// leaving the rest of it as it was.
func writeBridgeOnly(out string, rep *BridgeReport, runs int) error {
	old, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(out, []byte(spliceBridge(string(old), renderBridge(rep, runs))), 0o644)
}
