// Command siobench measures a Socket.IO 0.9 server that runs the echo
// contract (this cluster, or the reference socket.io 0.9.19 under
// test/reference) over websocket or xhr-polling.
//
// Scenarios:
//
//	connect    N clients handshake and connect, -concurrency at a time:
//	           connects/s, errors, and the server's RSS per connection (-pid);
//	           with -hold, all stay connected that long, answering heartbeats:
//	           how many were dropped, heartbeats received, the server's RSS
//	           per connection and CPU at the end
//	echo       N connected clients emit echo with an ack in a closed loop
//	           (or -rate per client per second): acks/s, RTT percentiles
//	broadcast  N clients join one room; one sends "to" with a timestamp every
//	           -interval: delivery latency to every member, deliveries missing
//	polling    echo over xhr-polling (point -url at a load balancer)
//	ws-echo    echo without Socket.IO: plain websocket messages to a bare
//	           echo server (cmd/wsecho), the ceiling of the others
//
// It prints a progress line every second on stderr and a summary on stdout
// (-json for JSON). Runs are bounded by -duration and -clients.
//
// Many clients: each needs a file descriptor here and one on the server.
// siobench raises its own RLIMIT_NOFILE soft limit to the hard limit and
// says when -clients does not fit; the server needs its own limit high
// enough (Go programs such as cmd/gateway raise their soft limit to the hard
// limit by themselves; the hard limit is the system's: ulimit -Hn, systemd
// LimitNOFILE, the container runtime). One local address has one ephemeral
// port range (net.ipv4.ip_local_port_range, about 28,000 ports) per server
// address: -source-ips spreads the clients over several, e.g.
// -source-ips 127.0.0.1-127.0.0.20 on loopback.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/tools/internal/benchresult"
)

type config struct {
	urls        []string
	transport   string
	scenario    string
	clients     int
	concurrency int
	duration    time.Duration
	rate        float64
	interval    time.Duration
	pid         int
	jsonOut     bool
	hold        time.Duration
	sourceIPs   []net.IP
}

// Result is the summary of one run (printed with -json).
type Result = benchresult.Result

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "siobench: error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("siobench", flag.ContinueOnError)
	var c config
	url := fs.String("url", "http://127.0.0.1:8000", "server base URL; several comma-separated are used in turn")
	fs.StringVar(&c.transport, "transport", "websocket", "websocket or xhr-polling")
	fs.StringVar(&c.scenario, "scenario", "echo", "connect, echo, broadcast, polling or ws-echo")
	fs.IntVar(&c.clients, "clients", 100, "number of clients")
	fs.IntVar(&c.concurrency, "concurrency", 50, "connects in flight at once")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the echo and broadcast scenarios run")
	fs.Float64Var(&c.rate, "rate", 0, "echo: emits per second per client (0: closed loop)")
	fs.DurationVar(&c.interval, "interval", 100*time.Millisecond, "broadcast: time between two sends")
	fs.IntVar(&c.pid, "pid", 0, "connect: the server's pid, to report its RSS per connection")
	fs.BoolVar(&c.jsonOut, "json", false, "print the summary as JSON")
	fs.DurationVar(&c.hold, "hold", 0, "connect: keep every client connected this long (answering heartbeats), then report the dropped")
	sources := fs.String("source-ips", "", "local addresses the clients connect from, in turn: a list (127.0.0.1,127.0.0.2) and/or ranges (127.0.0.1-127.0.0.20)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var err error
	if c.sourceIPs, err = parseIPs(*sources); err != nil {
		return err
	}
	if cur, max, err := raiseNoFile(); err == nil && uint64(c.clients)+64 > cur {
		fmt.Fprintf(os.Stderr, "siobench: warning: %d clients need about %d open files; the limit is %d (hard %d)\n",
			c.clients, c.clients+64, cur, max)
	}
	for _, u := range strings.Split(*url, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.urls = append(c.urls, strings.TrimSuffix(u, "/"))
		}
	}
	if c.scenario == "polling" {
		c.transport = "xhr-polling"
	}
	if c.transport != "websocket" && c.transport != "xhr-polling" {
		return fmt.Errorf("transport %q: want websocket or xhr-polling", c.transport)
	}
	if c.clients < 1 || c.concurrency < 1 {
		return errors.New("-clients and -concurrency must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var res Result
	switch c.scenario {
	case "connect":
		res, err = connectScenario(ctx, c)
	case "echo", "polling":
		res, err = echoScenario(ctx, c)
	case "broadcast":
		res, err = broadcastScenario(ctx, c)
	case "ws-echo":
		res, err = wsEchoScenario(ctx, c)
	default:
		return fmt.Errorf("scenario %q: want connect, echo, broadcast, polling or ws-echo", c.scenario)
	}
	if err != nil {
		return err
	}
	res.Scenario, res.Transport, res.Clients = c.scenario, c.transport, c.clients
	if len(c.sourceIPs) > 0 {
		res.SourceIPs = len(c.sourceIPs)
	}
	if c.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	printSummary(res)
	return nil
}

// connectAll connects the clients, concurrency at a time; each client starts
// on the next URL in turn.
func connectAll(ctx context.Context, c config, errs *atomic.Int64) []*sioclient.Client {
	out := make([]*sioclient.Client, c.clients)
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	var done atomic.Int64
	stopProgress := progress("connected", func() string { return fmt.Sprintf("%d/%d, %d errors", done.Load(), c.clients, errs.Load()) })
	defer stopProgress()
	for i := range out {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			urls := append(append([]string{}, c.urls[i%len(c.urls):]...), c.urls[:i%len(c.urls)]...)
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			opts := sioclient.Options{Transport: c.transport}
			if len(c.sourceIPs) > 0 {
				opts.LocalIP = c.sourceIPs[i%len(c.sourceIPs)]
			}
			cl, err := sioclient.DialOptions(dctx, opts, urls...)
			if err != nil {
				if errs.Add(1) == 1 {
					fmt.Fprintln(os.Stderr, "siobench: first connect error:", err)
				}
				return
			}
			out[i] = cl
			done.Add(1)
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(out, func(cl *sioclient.Client) bool { return cl == nil })
}

func closeAll(cls []*sioclient.Client) {
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Add(1)
		go func() { defer wg.Done(); cl.Close() }()
	}
	wg.Wait()
}

func connectScenario(ctx context.Context, c config) (Result, error) {
	before := rssKB(c.pid)
	var errs atomic.Int64
	start := time.Now()
	cls := connectAll(ctx, c, &errs)
	took := time.Since(start)
	res := Result{Connected: len(cls), Errors: errs.Load(), Seconds: took.Seconds(),
		ConnectsPerS: float64(len(cls)) / took.Seconds(), Ops: int64(len(cls))}
	if c.pid > 0 && len(cls) > 0 {
		time.Sleep(time.Second) // let the server settle
		res.RSSPerConnKB = float64(rssKB(c.pid)-before) / float64(len(cls))
	}
	if c.hold > 0 && len(cls) > 0 {
		hold(ctx, c, cls, before, &res)
	}
	closeAll(cls)
	return res, nil
}

// hold keeps the clients connected for c.hold (they answer heartbeats by
// themselves) and records what the hold fields of Result say.
func hold(ctx context.Context, c config, cls []*sioclient.Client, rssBefore int64, res *Result) {
	hb0 := make([]int64, len(cls))
	for i, cl := range cls {
		hb0[i] = cl.Heartbeats()
	}
	dropped := func() (n int64) {
		for _, cl := range cls {
			if cl.Err() != nil {
				n++
			}
		}
		return n
	}
	stopProgress := progress("holding", func() string { return fmt.Sprintf("%d clients, %d dropped", len(cls), dropped()) })
	cpu0, start := cpuTicks(c.pid), time.Now()
	select {
	case <-time.After(c.hold):
	case <-ctx.Done():
	}
	cpu1, took := cpuTicks(c.pid), time.Since(start)
	stopProgress()
	res.HeldSeconds = took.Seconds()
	res.Dropped = dropped()
	res.MinHeartbeats = -1
	for i, cl := range cls {
		n := cl.Heartbeats() - hb0[i]
		res.Heartbeats += n
		if cl.Err() == nil && (res.MinHeartbeats < 0 || n < res.MinHeartbeats) {
			res.MinHeartbeats = n
		}
	}
	res.MinHeartbeats = max(res.MinHeartbeats, 0)
	if c.pid > 0 {
		res.RSSPerConnHeldKB = float64(rssKB(c.pid)-rssBefore) / float64(len(cls))
		if cpu0 >= 0 && cpu1 >= 0 {
			res.ServerCPUPercent = float64(cpu1-cpu0) / clockTicks / took.Seconds() * 100
		}
	}
}

// clockTicks is the unit of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const clockTicks = 100

// cpuTicks returns a process's user plus system time in clock ticks (-1 if
// unknown).
func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return -1
	}
	st, err := p.Stat()
	if err != nil {
		return -1
	}
	return int64(st.UTime + st.STime)
}

// parseIPs parses -source-ips: comma-separated IPv4 addresses and ranges
// (a-b, same first three octets or not).
func parseIPs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo)).To4()
		b := a
		if isRange {
			b = net.ParseIP(strings.TrimSpace(hi)).To4()
		}
		if a == nil || b == nil {
			return nil, fmt.Errorf("-source-ips: %q is not an IPv4 address or range", part)
		}
		from, to := ipv4Int(a), ipv4Int(b)
		if to < from || to-from >= 1<<16 {
			return nil, fmt.Errorf("-source-ips: bad range %q", part)
		}
		for n := from; n <= to; n++ {
			out = append(out, net.IPv4(byte(n>>24), byte(n>>16), byte(n>>8), byte(n)))
		}
	}
	return out, nil
}

func ipv4Int(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

func echoScenario(ctx context.Context, c config) (Result, error) {
	var errs atomic.Int64
	cls := connectAll(ctx, c, &errs)
	if len(cls) == 0 {
		return Result{}, errors.New("no client connected")
	}
	defer closeAll(cls)
	rctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	var ops atomic.Int64
	rtts := make([][]time.Duration, len(cls))
	stopProgress := progress("echo", func() string { return fmt.Sprintf("%d acks, %d errors", ops.Load(), errs.Load()) })
	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if c.rate > 0 {
				t := time.NewTicker(time.Duration(float64(time.Second) / c.rate))
				defer t.Stop()
				tick = t.C
			}
			for n := 0; rctx.Err() == nil; n++ {
				if tick != nil {
					select {
					case <-tick:
					case <-rctx.Done():
						return
					}
				}
				t0 := time.Now()
				got, err := cl.EmitAck(rctx, "", "echo", n)
				if err != nil {
					if rctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				if string(got) != "["+strconv.Itoa(n)+"]" {
					errs.Add(1)
					continue
				}
				rtts[i] = append(rtts[i], time.Since(t0))
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	return closedLoop(len(cls), errs.Load(), ops.Load(), time.Since(start), rtts), nil
}

// closedLoop summarizes a closed-loop run (echo, polling, ws-echo):
// connected clients, errors, round trips done in took, and each client's
// round-trip times.
func closedLoop(connected int, errs, ops int64, took time.Duration, rtts [][]time.Duration) Result {
	res := Result{Connected: connected, Errors: errs, Seconds: took.Seconds(), Ops: ops,
		OpsPerS: float64(ops) / took.Seconds()}
	fill(&res, slices.Concat(rtts...))
	return res
}

func broadcastScenario(ctx context.Context, c config) (Result, error) {
	var errs atomic.Int64
	cls := connectAll(ctx, c, &errs)
	if len(cls) < 2 {
		return Result{}, errors.New("broadcast needs at least two connected clients")
	}
	defer closeAll(cls)
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, cl := range cls {
		if _, err := cl.EmitAck(jctx, "", "join", "bench"); err != nil {
			return Result{}, fmt.Errorf("join: %w", err)
		}
	}
	sender, members := cls[0], cls[1:]
	rctx, cancelRun := context.WithTimeout(ctx, c.duration)
	defer cancelRun()
	var mu sync.Mutex
	var lat []time.Duration
	received := make([]atomic.Int64, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				args, err := m.NextEvent(rctx, "", "relay")
				if err != nil {
					return
				}
				var relay []json.RawMessage
				var sent int64
				if json.Unmarshal(args, &relay) == nil && len(relay) > 0 && json.Unmarshal(relay[0], &sent) == nil {
					d := time.Since(time.Unix(0, sent))
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					received[i].Add(1)
				}
			}
		}()
	}
	var sends atomic.Int64
	stopProgress := progress("broadcast", func() string { return fmt.Sprintf("%d sends to %d members", sends.Load(), len(members)) })
	start := time.Now()
	t := time.NewTicker(c.interval)
	for rctx.Err() == nil {
		if _, err := sender.EmitAck(rctx, "", "to", "bench", time.Now().UnixNano()); err == nil {
			sends.Add(1)
		} else if rctx.Err() == nil {
			errs.Add(1)
		}
		select {
		case <-t.C:
		case <-rctx.Done():
		}
	}
	t.Stop()
	// Deliveries still in flight get a moment.
	time.Sleep(time.Second)
	cancelRun()
	wg.Wait()
	stopProgress()
	var missing int64
	for i := range received {
		missing += sends.Load() - received[i].Load()
	}
	took := time.Since(start)
	res := Result{Connected: len(cls), Errors: errs.Load(), Seconds: took.Seconds(), Ops: int64(len(lat)),
		OpsPerS: float64(len(lat)) / took.Seconds(), Missing: max(0, missing)}
	fill(&res, lat)
	return res, nil
}

// fill sets the latency percentiles.
func fill(r *Result, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))]) / float64(time.Millisecond)
	}
	r.P50ms, r.P90ms, r.P99ms, r.MaxMs = at(0.50), at(0.90), at(0.99), float64(d[len(d)-1])/float64(time.Millisecond)
}

// progress prints a line every second on stderr until stopped.
func progress(what string, line func() string) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "%s: %s\n", what, line())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// rssKB reads a process's resident set size (VmRSS in /proc/<pid>/status)
// in KiB (0 if unknown).
func rssKB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return int64(st.VmRSS / 1024) // procfs gives bytes
}

func printSummary(r Result) {
	fmt.Printf("scenario %s over %s: %d/%d clients connected, %d errors, %.1fs\n",
		r.Scenario, r.Transport, r.Connected, r.Clients, r.Errors, r.Seconds)
	switch r.Scenario {
	case "connect":
		fmt.Printf("  %.0f connects/s", r.ConnectsPerS)
		if r.RSSPerConnKB != 0 {
			fmt.Printf(", server RSS %.1f KiB per connection", r.RSSPerConnKB)
		}
		fmt.Println()
		if r.HeldSeconds > 0 {
			fmt.Printf("  held %.1fs: %d dropped, %d heartbeats (at least %d per client)", r.HeldSeconds, r.Dropped, r.Heartbeats, r.MinHeartbeats)
			if r.RSSPerConnHeldKB != 0 {
				fmt.Printf(", server RSS %.1f KiB per connection, server CPU %.1f%%", r.RSSPerConnHeldKB, r.ServerCPUPercent)
			}
			fmt.Println()
		}
	default:
		fmt.Printf("  %d ops, %.0f/s; latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms",
			r.Ops, r.OpsPerS, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
		if r.Scenario == "broadcast" {
			fmt.Printf("; %d deliveries missing", r.Missing)
		}
		fmt.Println()
	}
}
