package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
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
		s.printFailures()
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
			if i := strings.Index(got, "FAILED: 1"); i < 0 || !strings.Contains(got[i:], "sample_test.go:21: failed on purpose") {
				t.Errorf("the failure is not repeated at the end:\n%s", got)
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

func TestSplitDirs(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		dirs, rest []string
	}{
		{[]string{"-race", "./..."}, []string{""}, []string{"-race", "./..."}},
		{[]string{"-C", ".", "-C", "tools", "-count=1", "./..."}, []string{".", "tools"}, []string{"-count=1", "./..."}},
		{[]string{"-count=1", "-C", "x"}, []string{""}, []string{"-count=1", "-C", "x"}},
		{[]string{"-C"}, []string{""}, []string{"-C"}},
	} {
		dirs, rest := splitDirs(tc.args)
		if !slices.Equal(dirs, tc.dirs) || !slices.Equal(rest, tc.rest) {
			t.Errorf("splitDirs(%q) = %q, %q; want %q, %q", tc.args, dirs, rest, tc.dirs, tc.rest)
		}
	}
}

// Two directories under one summary: both run, their skips are listed
// together, and a directory that fails (here: it does not exist) gives
// the exit status without stopping the next.
func TestRunInSeveralDirectories(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"testdata/sample", "testdata/sample"}, []string{"-count=1", "."}, &out, &errOut); code != 0 {
		t.Fatalf("exit status %d\n%s\n%s", code, out.String(), errOut.String())
	}
	got := out.String()
	if n := strings.Count(got, "ok  \tgithub.com/realtime/realtime/internal/testsummary/testdata/sample"); n != 2 {
		t.Errorf("%d ok lines, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "SKIPPED: 4 tests") {
		t.Errorf("the skips of both runs are not listed together:\n%s", got)
	}

	out.Reset()
	errOut.Reset()
	code := run([]string{"testdata/no-such-directory", "testdata/sample"}, []string{"-count=1", "."}, &out, &errOut)
	if code == 0 {
		t.Errorf("exit status 0 with a missing directory\n%s\n%s", out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "ok  \tgithub.com/realtime/realtime/internal/testsummary/testdata/sample") {
		t.Errorf("the second directory did not run after the first failed:\n%s\n%s", out.String(), errOut.String())
	}
}

// A failed test's messages are repeated at the very end without the process
// logs it dumped, so the tail of a long log says what failed.
func TestFailuresRecapLeavesOutProcessLogs(t *testing.T) {
	var b strings.Builder
	s := newSummary(&b)
	out := func(text string) string {
		j, _ := json.Marshal(event{Action: "output", Package: "p", Test: "TestX", Output: text})
		return string(j) + "\n"
	}
	in := out("=== RUN   TestX\n") +
		out("    routes_test.go:38: websocket: steady.js: exit status 1\n") +
		out("        not ok - client 3 lost nothing\n") +
		out("        11 passed, 1 failed\n") +
		out("    harness_test.go:219: --- log of g1 ---\n") +
		out("        time=... msg=\"gateway started\"\n") +
		out("        routes.go:12: a log line that looks like a message\n") +
		out("    routes_test.go:124: 2 route gaps\n") +
		out("--- FAIL: TestX (1.00s)\n") +
		`{"Action":"fail","Package":"p","Test":"TestX"}` + "\n"
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	s.printSkips()
	s.printFailures()
	got := b.String()
	recap, ok := strings.CutPrefix(got[strings.Index(got, "\nFAILED: 1"):], "\n")
	if !ok {
		t.Fatalf("no recap at the end:\n%s", got)
	}
	want := "FAILED: 1 (their messages again, without the process logs they dumped):\n" +
		"--- p TestX\n" +
		"    routes_test.go:38: websocket: steady.js: exit status 1\n" +
		"        not ok - client 3 lost nothing\n" +
		"        11 passed, 1 failed\n" +
		"    routes_test.go:124: 2 route gaps\n"
	if recap != want {
		t.Errorf("recap:\n%s\nwant:\n%s", recap, want)
	}
	if !strings.Contains(got, "gateway started") {
		t.Errorf("the test's own output lost the process log:\n%s", got)
	}
}

func TestFailuresRecapIsBounded(t *testing.T) {
	lines := []string{"    a_test.go:1: first\n"}
	for range 100 {
		lines = append(lines, "        "+strings.Repeat("x", 1000)+"\n")
	}
	lines = append(lines, "    a_test.go:2: second\n")
	got := failureMessages(lines)
	if len(got) != 1+recapLinesPerMessage+1+1 {
		t.Fatalf("%d lines: %q", len(got), got)
	}
	for _, l := range got {
		if len(l) > recapLineBytes+len("…") {
			t.Errorf("line of %d bytes", len(l))
		}
	}
	if got[len(got)-1] != "    a_test.go:2: second" {
		t.Errorf("last line %q", got[len(got)-1])
	}
}

// The slowest top-level tests are listed slowest first, at most
// slowestShown; subtests are not.
func TestSummaryListsTheSlowest(t *testing.T) {
	var in strings.Builder
	for i := range slowestShown + 5 {
		ev := event{Action: "pass", Package: "p", Test: "Test" + string(rune('A'+i)), Elapsed: float64(i)}
		b, _ := json.Marshal(ev)
		in.Write(append(b, '\n'))
	}
	b, _ := json.Marshal(event{Action: "fail", Package: "q", Test: "TestSlowSub/part", Elapsed: 999})
	in.Write(append(b, '\n'))
	var out strings.Builder
	s := newSummary(&out)
	if err := s.read(strings.NewReader(in.String())); err != nil {
		t.Fatal(err)
	}
	s.printSlowest()
	got := out.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if lines[0] != "SLOWEST: the 15 slowest of 20 tests:" || len(lines) != 1+slowestShown {
		t.Fatalf("got\n%s", got)
	}
	if !strings.HasSuffix(lines[1], "19.0s p TestT") || !strings.HasSuffix(lines[15], "5.0s p TestF") || strings.Contains(got, "TestSlowSub") {
		t.Fatalf("not the slowest first, or a subtest listed:\n%s", got)
	}
}
