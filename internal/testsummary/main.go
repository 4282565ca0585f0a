// Command testsummary runs go test with -json and the given arguments,
// prints what go test prints without -v (each package's ok or FAIL line,
// and the output of failed tests), and ends with a summary of the skipped
// tests and why each skipped, so that a suite skipped for a missing
// dependency (redis-server, node, chromium, haproxy) does not hide behind a
// row of ok lines. It exits with go test's status (1 if a test or package
// failed even when go test's own status did not say so).
//
// Usage (make test):
//
//	go run ./internal/testsummary -race -count=1 ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

func main() {
	cmd := exec.Command("go", append([]string{"test", "-json"}, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	s := newSummary(os.Stdout)
	if err := s.read(out); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary: reading go test's output:", err)
	}
	werr := cmd.Wait()
	s.printSkips()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(werr, &exit):
		code = exit.ExitCode()
	case werr != nil:
		fmt.Fprintln(os.Stderr, "testsummary:", werr)
		code = 2
	}
	if code == 0 && s.failed {
		code = 1
	}
	os.Exit(code)
}

// event is one line of go test -json (cmd/test2json's TestEvent, and the
// build events of go test -json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// skip is a skipped test and the last line it logged (its t.Skip reason).
type skip struct {
	Package, Test, Reason string
}

// summary turns go test -json events back into go test's plain output and
// collects the skips.
type summary struct {
	w      io.Writer
	output map[string][]string // a running test's output, by package and test
	skips  []skip
	failed bool
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

// printSkips prints the skipped tests, one a line with the reason, under
// "SKIPPED:", or nothing when none skipped.
func (s *summary) printSkips() {
	if len(s.skips) == 0 {
		return
	}
	fmt.Fprintf(s.w, "\nSKIPPED: %d tests (with CI=true, one skipped for a missing dependency fails instead):\n", len(s.skips))
	for _, sk := range s.skips {
		fmt.Fprintf(s.w, "  %s %s: %s\n", sk.Package, sk.Test, sk.Reason)
	}
}
