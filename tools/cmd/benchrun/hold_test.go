package main

import "testing"

// 50,000 clients need three source addresses' ephemeral ports.
func TestHoldSourceIPs(t *testing.T) {
	for n, want := range map[int]string{900: "127.0.0.1-127.0.0.2", 19000: "127.0.0.1-127.0.0.2", 50000: "127.0.0.1-127.0.0.4"} {
		if got := holdSourceIPs(n); got != want {
			t.Errorf("holdSourceIPs(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHoldVerdict(t *testing.T) {
	for _, c := range []struct {
		h    HoldReport
		want Verdict
	}{
		{HoldReport{Target: 50000, Clients: 50000, Connected: 50000}, Met},
		{HoldReport{Target: 50000, Clients: 50000, Connected: 50000, Dropped: 1}, Missed},
		{HoldReport{Target: 50000, Clients: 50000, Connected: 49999}, Missed},
		{HoldReport{Target: 50000, Clients: 50000, Connected: 50000, Errors: 2}, Missed},
		{HoldReport{Target: 50000, Clients: 19000, Connected: 19000}, NoData},
		{HoldReport{Target: 50000, Clients: 19000, Connected: 19000, Dropped: 3}, Missed},
		{HoldReport{Target: 50000, Clients: 50000, Err: "boom"}, NoData},
	} {
		if got := c.h.Verdict(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.h, got, c.want)
		}
	}
}

func TestRenderHold(t *testing.T) {
	h := &HoldReport{Target: 50000, Clients: 19000, Limit: 20000, Heartbeat: holdHeartbeat,
		Connected: 19000, Heartbeats: 171000, MinHeartbeats: 9, RSSPerConnKB: 6.4, CPUPercent: 11.5, HeldSeconds: 45,
		Command: "siobench -scenario connect"}
	got := renderHold(h)
	wantContains(t, got,
		"**50,000 websockets held on one gateway, heartbeats every 5s**",
		"| 19,000 of 19,000 | 0 | 0 | 171000 (9) | 6.40 KiB | 11.5% | not run at 50,000: the open-file limit is 20000 per process |",
		"Held 45 s: `siobench -scenario connect`.",
	)
	if renderHold(nil) != "" {
		t.Error("a hold that did not run rendered")
	}
	if got := formatCount(1234567); got != "1,234,567" {
		t.Errorf("formatCount = %q", got)
	}
}
