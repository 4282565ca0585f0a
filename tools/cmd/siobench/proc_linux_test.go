package main

import (
	"os"
	"testing"
)

// The server measurements (Linux's /proc) read this very process: its RSS
// is there, and its CPU time moves as it burns CPU.
func TestProcReadings(t *testing.T) {
	if rssKB(0) != 0 || cpuTicks(0) != -1 {
		t.Fatalf("no pid: rssKB %d, cpuTicks %d; want 0 and -1", rssKB(0), cpuTicks(0))
	}
	pid := os.Getpid()
	if kb := rssKB(pid); kb < 1024 || kb > 1<<22 {
		t.Fatalf("rssKB = %d KiB for a Go test binary", kb)
	}
	before := cpuTicks(pid)
	x := 0
	for i := 0; i < 200_000_000; i++ {
		x += i % 7
	}
	if after := cpuTicks(pid); before < 0 || after <= before {
		t.Fatalf("cpuTicks %d then %d after burning CPU (x=%d)", before, after, x)
	}
}
