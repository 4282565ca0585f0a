package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The sample package through go test -json and the summary: a passing run
// prints the ok line and the skips with their reasons; a failing run also
// prints the failed test's output and counts as failed.
func TestSummaryOfSample(t *testing.T) {
	for _, fail := range []bool{false, true} {
		cmd := exec.Command("go", "test", "-json", "-count=1", "./testdata/sample")
		if fail {
			cmd.Env = append(os.Environ(), "SAMPLE_FAIL=1")
		}
		out, _ := cmd.Output() // go test exits 1 when a test fails
		var b strings.Builder
		s := newSummary(&b)
		if err := s.read(strings.NewReader(string(out))); err != nil {
			t.Fatal(err)
		}
		s.printSkips()
		got := b.String()
		if s.failed != fail {
			t.Errorf("fail=%v: failed = %v\n%s", fail, s.failed, got)
		}
		for _, want := range []string{
			"SKIPPED: 2 tests",
			"testsummary/testdata/sample TestSkips: sample_test.go:12: redis-server is not installed",
			"testsummary/testdata/sample TestSub/skipped: sample_test.go:15: haproxy is not installed",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("fail=%v: no %q in\n%s", fail, want, got)
			}
		}
		for _, unwanted := range []string{"=== RUN", "not shown", "--- PASS"} {
			if strings.Contains(got, unwanted) {
				t.Errorf("fail=%v: %q in\n%s", fail, unwanted, got)
			}
		}
		if fail {
			if !strings.Contains(got, "failed on purpose") || !strings.Contains(got, "--- FAIL: TestFails") || !strings.Contains(got, "FAIL\tgithub.com/realtime/realtime/internal/testsummary/testdata/sample") {
				t.Errorf("the failure is not shown:\n%s", got)
			}
		} else if !strings.Contains(got, "ok  \tgithub.com/realtime/realtime/internal/testsummary/testdata/sample") {
			t.Errorf("no ok line:\n%s", got)
		}
	}
}

func TestSummaryPrintsNothingWithoutSkips(t *testing.T) {
	var b strings.Builder
	s := newSummary(&b)
	_ = s.read(strings.NewReader(`{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}` + "\nnot json\n"))
	s.printSkips()
	if got := b.String(); got != "ok  \tp\t0.1s\nnot json\n" {
		t.Errorf("got %q", got)
	}
}
