// Command testsummary runs go test with -json and the given arguments,
// prints what go test prints without -v (each package's ok or FAIL line,
// and the output of failed tests), then the slowest tests (SLOWEST:, so a
// suite growing too long shows where), and ends with a summary of the skipped
// tests and why each skipped, so that a suite skipped for a missing
// dependency (redis-server, node, chromium, haproxy) does not hide behind a
// row of ok lines. Last of all it repeats the messages of each failed test
// without the process logs the test dumped (see failureMessages), so the
// tail of a long CI log says what failed. It exits with go test's status (1 if a test or package
// failed even when go test's own status did not say so).
//
// Leading -C dir arguments (repeatable) run go test in each of those
// directories in turn (go -C dir test), with the same arguments, under one
// summary: that is how one run covers the repository's two modules, the
// root and tools/. The exit status is the first non-zero one; a failing
// module does not stop the next.
//
// Usage (make test):
//
//	go run ./internal/testsummary -C . -C tools -race -count=1 ./...
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

func main() {
	dirs, args := splitDirs(os.Args[1:])
	os.Exit(run(dirs, args, os.Stdout, os.Stderr))
}

// splitDirs takes the leading "-C dir" pairs off args. Without any, the
// one directory is "" (the current one).
func splitDirs(args []string) (dirs, rest []string) {
	for len(args) >= 2 && args[0] == "-C" {
		dirs = append(dirs, args[1])
		args = args[2:]
	}
	if len(dirs) == 0 {
		dirs = []string{""}
	}
	return dirs, args
}

// run runs go test -json with args in each of dirs, prints the summary on
// stdout and go's own errors on stderr, and returns the exit status.
func run(dirs, args []string, stdout, stderr io.Writer) int {
	s := newSummary(stdout)
	code := 0
	for _, dir := range dirs {
		if c := runIn(s, dir, args, stderr); code == 0 {
			code = c
		}
	}
	s.printSlowest()
	s.printSkips()
	s.printFailures()
	if code == 0 && s.failed {
		code = 1
	}
	return code
}

// runIn runs go test -json with args in dir ("": the current directory),
// feeds its output to s and returns its exit status.
func runIn(s *summary, dir string, args []string, stderr io.Writer) int {
	goArgs := []string{"test", "-json"}
	if dir != "" {
		goArgs = append([]string{"-C", dir}, goArgs...)
	}
	cmd := exec.Command("go", append(goArgs, args...)...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	if err := s.read(out); err != nil {
		fmt.Fprintln(stderr, "testsummary: reading go test's output:", err)
	}
	werr := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case errors.As(werr, &exit):
		return exit.ExitCode()
	case werr != nil:
		fmt.Fprintln(stderr, "testsummary:", werr)
		return 2
	}
	return 0
}

// event is one line of go test -json (cmd/test2json's TestEvent, and the
// build events of go test -json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64 // seconds, on a test's pass or fail
}

// timing is how long a top-level test ran.
type timing struct {
	Package, Test string
	Seconds       float64
}

// slowestShown is how many of the slowest tests the summary lists.
const slowestShown = 15

// skip is a skipped test and the last line it logged (its t.Skip reason).
type skip struct {
	Package, Test, Reason string
}

// failure is a failed test and its messages (failureMessages).
type failure struct {
	Package, Test string
	Messages      []string
}

// summary turns go test -json events back into go test's plain output and
// collects the skips.
type summary struct {
	w        io.Writer
	output   map[string][]string // a running test's output, by package and test
	skips    []skip
	failures []failure
	timings  []timing // top-level tests that passed or failed
	failed   bool
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, output: map[string][]string{}}
}

// read consumes go test -json output until EOF. Lines that are not JSON
// (go's own errors) are printed as they are.
func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Action == "" {
			fmt.Fprintln(s.w, sc.Text())
			continue
		}
		s.handle(ev)
	}
	return sc.Err()
}

func (s *summary) handle(ev event) {
	key := ev.Package + "\x00" + ev.Test
	if (ev.Action == "pass" || ev.Action == "fail") && ev.Test != "" && !strings.Contains(ev.Test, "/") {
		s.timings = append(s.timings, timing{ev.Package, ev.Test, ev.Elapsed})
	}
	switch ev.Action {
	case "output", "build-output":
		if ev.Test != "" {
			s.output[key] = append(s.output[key], ev.Output)
			return
		}
		// Package lines: go test without -v prints neither the RUN lines
		// nor a passing package's PASS line.
		if ev.Output == "PASS\n" || strings.HasPrefix(ev.Output, "=== ") {
			return
		}
		fmt.Fprint(s.w, ev.Output)
	case "skip":
		if ev.Test != "" {
			s.skips = append(s.skips, skip{Package: ev.Package, Test: ev.Test, Reason: reason(s.output[key])})
		}
		delete(s.output, key)
	case "pass":
		delete(s.output, key)
	case "fail", "build-fail":
		s.failed = true
		if ev.Test != "" {
			s.failures = append(s.failures, failure{ev.Package, ev.Test, failureMessages(s.output[key])})
			s.flush(key)
			return
		}
		// The package failed: tests still running when it ended (a panic,
		// a timeout, a crash) have no fail event of their own; print what
		// they wrote.
		for k := range s.output {
			if strings.HasPrefix(k, ev.Package+"\x00") {
				s.flush(k)
			}
		}
	}
}

// flush prints a test's output (without go test's own RUN lines) and forgets it.
func (s *summary) flush(key string) {
	for _, line := range s.output[key] {
		if !strings.HasPrefix(line, "=== ") {
			fmt.Fprint(s.w, line)
		}
	}
	delete(s.output, key)
}

// reason is the last line a skipped test logged other than go test's own
// RUN, PAUSE, CONT and SKIP lines: the message of its t.Skip.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

// printSlowest prints the slowest top-level tests, slowest first, under
// "SLOWEST:" (what to look at when the suite grows too long), or nothing
// when no test ran.
func (s *summary) printSlowest() {
	if len(s.timings) == 0 {
		return
	}
	ts := slices.Clone(s.timings)
	slices.SortStableFunc(ts, func(a, b timing) int { return cmp.Compare(b.Seconds, a.Seconds) })
	ts = ts[:min(len(ts), slowestShown)]
	fmt.Fprintf(s.w, "\nSLOWEST: the %d slowest of %d tests:\n", len(ts), len(s.timings))
	for _, t := range ts {
		fmt.Fprintf(s.w, "  %7.1fs %s %s\n", t.Seconds, t.Package, t.Test)
	}
}

// printSkips prints the skipped tests, one a line with the reason, under
// "SKIPPED:", or nothing when none skipped.
func (s *summary) printSkips() {
	if len(s.skips) == 0 {
		return
	}
	noun := "tests"
	if len(s.skips) == 1 {
		noun = "test"
	}
	fmt.Fprintf(s.w, "\nSKIPPED: %d %s (with CI=true, one skipped for a missing dependency fails instead):\n", len(s.skips), noun)
	for _, sk := range s.skips {
		fmt.Fprintf(s.w, "  %s %s: %s\n", sk.Package, sk.Test, sk.Reason)
	}
}

// Bounds of the failure recap: lines kept per message after its first, and
// per failed test, and the bytes kept of a line.
const (
	recapLinesPerMessage = 12
	recapLinesPerTest    = 40
	recapLineBytes       = 400
)

// testMessageRE matches the first line of a message a test logged
// (t.Error, t.Log, ...): its indentation, then file.go:line: and the text.
var testMessageRE = regexp.MustCompile(`^(\s+)\S+\.go:\d+: (.*)$`)

// processLogHeader starts a message that is a process's log dumped by the
// integration harness ("--- log of g1 ---"), which the recap leaves out.
const processLogHeader = "--- log of "

// failureMessages returns the messages of a failed test's output lines:
// each message line with up to recapLinesPerMessage of its continuation
// lines (those indented deeper), at most recapLinesPerTest lines in all,
// each cut to recapLineBytes; messages that are process logs are left out.
func failureMessages(lines []string) []string {
	var out []string
	keep, kept, indent := false, 0, ""
	for _, raw := range lines {
		line := strings.TrimRight(raw, "\n")
		if m := testMessageRE.FindStringSubmatch(line); m != nil && (indent == "" || len(m[1]) <= len(indent)) {
			indent, kept = m[1], 0
			keep = !strings.HasPrefix(m[2], processLogHeader)
			if keep {
				out = append(out, cut(line))
			}
		} else if keep && indent != "" && strings.HasPrefix(line, indent+" ") {
			kept++
			switch {
			case kept <= recapLinesPerMessage:
				out = append(out, cut(line))
			case kept == recapLinesPerMessage+1:
				out = append(out, indent+"    …")
			}
		} else if !strings.HasPrefix(line, "    ") {
			indent, keep = "", false // go test's own lines (--- FAIL) end a message
		}
		if len(out) >= recapLinesPerTest {
			return append(out[:recapLinesPerTest], "    … (more in the test's output above)")
		}
	}
	return out
}

func cut(line string) string {
	if len(line) <= recapLineBytes {
		return line
	}
	return line[:recapLineBytes] + "…"
}

// printFailures prints, under "FAILED:", each failed test with its
// messages, or nothing when none failed.
func (s *summary) printFailures() {
	if len(s.failures) == 0 {
		return
	}
	fmt.Fprintf(s.w, "\nFAILED: %d (their messages again, without the process logs they dumped):\n", len(s.failures))
	for _, f := range s.failures {
		fmt.Fprintf(s.w, "--- %s %s\n", f.Package, f.Test)
		for _, m := range f.Messages {
			fmt.Fprintln(s.w, m)
		}
	}
}
