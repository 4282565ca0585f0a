package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/realtime/realtime/internal/freeport"
)

// The hold run checks issue 6's "50,000 concurrent websocket connections on
// one gateway with heartbeats running, none dropped". It is the cluster's
// alone (the issue asks nothing of the reference here). A gateway of its
// own, with 5 s heartbeats, holds the connections of one siobench process,
// spread over local source addresses 127.0.0.x for ephemeral ports. Both
// processes share the open-file limit; where it is below what 50,000 need,
// the run holds as many as the limit allows and says so.

// holdScenario is the hold run's name in -scenarios.
const holdScenario = "hold"

const (
	holdTarget    = 50000
	holdHeartbeat = 5 * time.Second
	holdDuration  = 45 * time.Second
	holdGWHeadway = 1000  // descriptors the gateway keeps (Redis pool, listeners)
	holdPerIP     = 20000 // clients per source address (ephemeral ports)
)

// HoldReport is the outcome of the hold run.
type HoldReport struct {
	Target    int    // connections the issue asks for
	Clients   int    // connections attempted (Target, or what the limit allows)
	Limit     uint64 // open-file limit per process
	Heartbeat time.Duration
	Command   string // the siobench command line

	Connected, Errors, Dropped int64
	Heartbeats, MinHeartbeats  int64
	HeldSeconds                float64
	RSSPerConnKB               float64 // the gateway's growth over all connections
	CPUPercent                 float64 // the gateway, during the hold, percent of one core
	Err                        string  // why the run failed, or ""
	Skipped                    string  // why it did not run, or ""
}

// Verdict checks the target: all Target connections held, none dropped.
func (h *HoldReport) Verdict() Verdict {
	switch {
	case h.Err != "" || h.Skipped != "" || h.Clients == 0:
		return NoData
	case h.Connected < int64(h.Clients) || h.Dropped > 0 || h.Errors > 0:
		return Missed
	case h.Clients < h.Target:
		return NoData // fewer than asked: the limit, not the gateway
	}
	return Met
}

// holdSourceIPs returns the 127.0.0.x source addresses for clients, enough
// for their ephemeral ports.
func holdSourceIPs(clients int) string {
	return fmt.Sprintf("127.0.0.1-127.0.0.%d", (clients+holdPerIP-1)/holdPerIP+1)
}

// runHold runs the hold on a gateway of its own and stops it after.
func runHold(ctx context.Context, o options, srv *servers, files uint64) *HoldReport {
	h := &HoldReport{Target: holdTarget, Limit: files, Heartbeat: holdHeartbeat}
	duration := holdDuration
	if o.quick {
		h.Target, duration = 1000, 12*time.Second
	}
	h.Clients = min(h.Target, int(files)-holdGWHeadway)
	if h.Clients < 100 {
		h.Skipped = fmt.Sprintf("the open-file limit (%d) leaves no room", files)
		return h
	}
	port, err := freeport.Loopback()
	if err != nil {
		h.Err = err.Error()
		return h
	}
	admin, err := freeport.Loopback()
	if err != nil {
		h.Err = err.Error()
		return h
	}
	gw, err := srv.cluster.launchGateway(ctx, "gateway-hold", "bench-hold", port, admin,
		"-heartbeat-interval", holdHeartbeat.String(), "-heartbeat-timeout", (3 * holdHeartbeat).String(),
		"-max-connections", "0")
	if gw != nil {
		defer gw.stop(10 * time.Second)
	}
	if err != nil {
		h.Err = err.Error()
		return h
	}
	args := []string{"-url", fmt.Sprintf("http://127.0.0.1:%d", port), "-json", "-scenario", "connect",
		"-clients", strconv.Itoa(h.Clients), "-concurrency", "100", "-hold", duration.String(),
		"-source-ips", holdSourceIPs(h.Clients), "-pid", strconv.Itoa(gw.pid())}
	h.Command = "siobench " + strings.Join(args, " ")
	r, _, err := siobench(ctx, o.paths.Bin, Scenario{Name: "hold", Scenario: "connect"}, h.Clients, duration, args)
	if err != nil {
		h.Err = err.Error()
		return h
	}
	h.Connected, h.Errors, h.Dropped = int64(r.Connected), r.Errors, r.Dropped
	h.Heartbeats, h.MinHeartbeats = r.Heartbeats, r.MinHeartbeats
	h.HeldSeconds, h.CPUPercent, h.RSSPerConnKB = r.HeldSeconds, r.ServerCPUPercent, r.RSSPerConnHeldKB
	return h
}

// renderHold renders the hold run for the report ("" when it did not run).
func renderHold(h *HoldReport) string {
	if h == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s websockets held on one gateway, heartbeats every %s** (cluster only; target: none dropped)\n\n",
		formatCount(h.Target), h.Heartbeat)
	switch {
	case h.Skipped != "":
		fmt.Fprintf(&b, "Skipped: %s.\n\n", h.Skipped)
		return b.String()
	case h.Err != "":
		fmt.Fprintf(&b, "Failed: %s\n\n", escapeCell(h.Err))
		return b.String()
	}
	fmt.Fprintf(&b, "| held | connect errors | dropped | heartbeats answered (fewest per client) | gateway RSS per connection | gateway CPU | verdict |\n")
	fmt.Fprintf(&b, "| ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	verdict := map[Verdict]string{Met: "✅ met", Missed: "❌ missed"}[h.Verdict()]
	if h.Verdict() == NoData {
		verdict = fmt.Sprintf("not run at %s: the open-file limit is %d per process", formatCount(h.Target), h.Limit)
	}
	fmt.Fprintf(&b, "| %s of %s | %d | %d | %d (%d) | %.2f KiB | %.1f%% | %s |\n\n",
		formatCount(int(h.Connected)), formatCount(h.Clients), h.Errors, h.Dropped, h.Heartbeats, h.MinHeartbeats,
		h.RSSPerConnKB, h.CPUPercent, verdict)
	fmt.Fprintf(&b, "Held %.0f s: `%s`.\n\n", h.HeldSeconds, h.Command)
	return b.String()
}

// formatCount writes n with thousands separators: 50000 → "50,000".
func formatCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
