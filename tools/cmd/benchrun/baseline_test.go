package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needGit skips t without git, except in CI, where that fails it.
func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed (CI is set: nothing may skip)")
		}
		t.Skip("git is not installed")
	}
}

// tinyRepo makes a git repository of a module whose cmd/gateway and
// cmd/worker print "<name> <version>", commits it with version "v1", then
// changes the work tree to "v2" without committing. It returns the
// repository and the commit.
func tinyRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(version string) {
		for _, c := range baselineCommands {
			src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"" + c + " " + version + "\") }\n"
			if err := os.MkdirAll(filepath.Join(dir, "cmd", c), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "cmd", c, "main.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/tiny\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("v1")
	git := func(args ...string) string {
		t.Helper()
		out, err := gitOutput(context.Background(), dir, append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "tiny: v1")
	commit := git("rev-parse", "--short", "HEAD")
	write("v2")
	return dir, commit
}

// runOutput runs a built command and returns what it printed.
func runOutput(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(path).Output()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// -baseline builds the committed tree, not the work tree, into dir/bin, and
// leaves the repository as it was (no worktree registered).
func TestBuildBaseline(t *testing.T) {
	needGit(t)
	repo, commit := tinyRepo(t)
	t.Chdir(filepath.Join(repo, "cmd")) // a subdirectory: the whole tree is built all the same
	dir := t.TempDir()
	b, err := buildBaseline(context.Background(), "HEAD", dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Rev != "HEAD" || b.Commit != commit || b.Subject != "tiny: v1" || b.Bin != filepath.Join(dir, "bin") || b.Label() != commit {
		t.Errorf("baseline: %+v", b)
	}
	if !strings.Contains(b.Build, "git archive "+commit) || !strings.Contains(b.Build, "./cmd/gateway ./cmd/worker") {
		t.Errorf("build command: %q", b.Build)
	}
	for _, c := range baselineCommands {
		if got := runOutput(t, filepath.Join(b.Bin, c)); got != c+" v1" {
			t.Errorf("%s printed %q, want %q (the commit, not the work tree)", c, got, c+" v1")
		}
	}
	// Built without VCS stamping, the commands are named by their directory.
	if d, err := describeBaselineBin(context.Background(), b.Bin); err != nil || d.Commit != "" || d.Label() != b.Bin {
		t.Errorf("-baseline-bin of the build: %+v, %v", d, err)
	}
	if out, err := gitOutput(context.Background(), repo, "worktree", "list", "--porcelain"); err != nil || strings.Count(out, "worktree ") != 1 {
		t.Errorf("worktrees after the build: %q, %v", out, err)
	}
	if _, err := buildBaseline(context.Background(), "no-such-rev", t.TempDir()); err == nil || !strings.Contains(err.Error(), "-baseline no-such-rev is not a commit") {
		t.Errorf("an unknown revision: %v", err)
	}
}

// -baseline-bin names the baseline by the commit Go stamped into the
// gateway, marked when the work tree had uncommitted changes, and refuses a
// directory without the commands.
func TestDescribeBaselineBin(t *testing.T) {
	needGit(t)
	repo, commit := tinyRepo(t)
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "./cmd/gateway", "./cmd/worker")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	t.Chdir(repo)
	b, err := describeBaselineBin(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if b.Commit != commit || !b.Dirty || b.Subject != "tiny: v1" || b.Bin != bin || b.Label() != commit+", with uncommitted changes" {
		t.Errorf("baseline: %+v", b)
	}
	if err := os.Remove(filepath.Join(bin, "worker")); err != nil {
		t.Fatal(err)
	}
	if _, err := describeBaselineBin(context.Background(), bin); err == nil {
		t.Error("a directory without a worker accepted")
	}
}
