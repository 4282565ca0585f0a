package worker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// templateDir is examples/worker-template, the README's "Writing a worker"
// as a module of its own.
const templateDir = "../../examples/worker-template"

// The worker template builds on its own, as a user builds it: copied out of
// the repository, with the SDK from a checkout (this one) named by the
// replace line of its go.mod, or, with that line dropped, by a replace in a
// go.work of its own (the README's two ways). Its go.mod and go.sum are
// tidy, so the copy needs no `go mod tidy` to build and a user's first tidy
// changes nothing. (test/integration's TestWorkerTemplate drives the built
// worker with a client.)
func TestWorkerTemplateBuildsOutsideTheRepo(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		setup [][]string // go commands that point the copy at root
	}{
		{"replace in go.mod", [][]string{
			{"mod", "edit", "-replace", "github.com/realtime/realtime=" + root},
		}},
		{"replace in go.work", [][]string{
			{"mod", "edit", "-dropreplace", "github.com/realtime/realtime"},
			{"work", "init", "."},
			{"work", "edit", "-replace", "github.com/realtime/realtime=" + root},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "myworker")
			if err := os.CopyFS(dir, os.DirFS(templateDir)); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "GOWORK=", "GOFLAGS=")
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command("go", args...)
				cmd.Dir, cmd.Env = dir, env
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("go %s in a copy of the template: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			if !strings.Contains(run("mod", "edit", "-json"), `"Path": "github.com/realtime/realtime"`) {
				t.Fatal("the template's go.mod does not require github.com/realtime/realtime")
			}
			for _, args := range c.setup {
				run(args...)
			}
			run("build", "-o", filepath.Join(t.TempDir(), "myworker"), ".")
			if c.name == "replace in go.mod" {
				// go mod tidy -diff prints the diff on stdout and exits 1;
				// stderr may hold "go: downloading" lines on a fresh machine.
				cmd := exec.Command("go", "mod", "tidy", "-diff")
				var stderr strings.Builder
				cmd.Dir, cmd.Env, cmd.Stderr = dir, env, &stderr
				if diff, err := cmd.Output(); err != nil || len(diff) != 0 {
					t.Fatalf("the template's go.mod or go.sum is not tidy (run go mod tidy in examples/worker-template): %v\n%s%s", err, diff, stderr.String())
				}
			}
		})
	}
}

// The README's worker snippet is the template's main.go, from its package
// clause on, so what the README shows is what TestWorkerTemplate runs.
func TestREADMEWorkerIsTheTemplate(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join(templateDir, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Writing a worker\n")
	if !ok {
		t.Fatal(`README.md has no "## Writing a worker" section`)
	}
	_, snippet, ok := strings.Cut(section, "\n```go\n")
	if !ok {
		t.Fatal(`"Writing a worker" has no go snippet`)
	}
	snippet, _, _ = strings.Cut(snippet, "\n```\n")
	_, program, ok := strings.Cut(string(main), "\npackage main\n")
	if !ok {
		t.Fatal("examples/worker-template/main.go has no package clause")
	}
	if want := "package main\n" + program; snippet+"\n" != want {
		t.Fatalf("README's worker snippet differs from examples/worker-template/main.go:\n--- README\n%s\n--- main.go\n%s", snippet, want)
	}
}
