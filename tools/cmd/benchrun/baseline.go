package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The baseline is a third target: the cluster built from another commit,
// started and measured exactly like the cluster (its own redis-server,
// gateway and echo worker; its own second gateway and haproxy for the
// scenarios through a load balancer), so that a change to the cluster is
// measured against what it replaced in the same run, on the same machine
// under the same load. -baseline-bin DIR takes a gateway and a worker
// already built; -baseline REV builds them (buildBaseline).

// baselineCommands are the commands a baseline directory must hold.
var baselineCommands = []string{"gateway", "worker"}

// Baseline says what the baseline target ran, for the report.
type Baseline struct {
	Rev     string // the revision given to -baseline ("" with -baseline-bin)
	Commit  string // its commit, abbreviated ("" when unknown)
	Subject string // the commit's subject line ("" when unknown)
	Dirty   bool   // -baseline-bin: built from a work tree with uncommitted changes
	Bin     string // the directory of its gateway and worker (with -baseline, a temporary one)
	Build   string // -baseline: how benchrun built it, in a temporary directory DIR
}

// Label names the baseline in headings: its commit, else its directory.
func (b *Baseline) Label() string {
	switch {
	case b.Commit != "" && b.Dirty:
		return b.Commit + ", with uncommitted changes"
	case b.Commit != "":
		return b.Commit
	}
	return b.Bin
}

// buildBaseline builds the gateway and the worker of the commit rev names
// into dir/bin: `git archive` of the commit, unpacked into dir/src, then `go
// build`. Nothing outside dir changes (no worktree is registered); the
// caller removes dir. It runs in the current directory's repository.
func buildBaseline(ctx context.Context, rev, dir string) (*Baseline, error) {
	top, err := gitOutput(ctx, "", "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	commit, err := gitOutput(ctx, top, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("-baseline %s is not a commit here: %w", rev, err)
	}
	b := &Baseline{Rev: rev}
	if b.Commit, err = gitOutput(ctx, top, "rev-parse", "--short", commit); err != nil {
		return nil, err
	}
	if b.Subject, err = gitOutput(ctx, top, "log", "-1", "--format=%s", commit); err != nil {
		return nil, err
	}
	src, bin := filepath.Join(dir, "src"), filepath.Join(dir, "bin")
	tarball := filepath.Join(dir, "src.tar")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	if _, err := gitOutput(ctx, top, "archive", "--format=tar", "-o", tarball, commit); err != nil {
		return nil, err
	}
	if err := runIn(ctx, "", nil, "tar", "-xf", tarball, "-C", src); err != nil {
		return nil, err
	}
	_ = os.Remove(tarball)
	var pkgs []string
	for _, c := range baselineCommands {
		pkgs = append(pkgs, "./cmd/"+c)
	}
	// GOWORK=off: the unpacked tree is a module of its own, whatever
	// go.work the environment points at. -buildvcs=false: it is no work
	// tree.
	args := append([]string{"build", "-buildvcs=false", "-o", bin + string(filepath.Separator)}, pkgs...)
	if err := runIn(ctx, src, []string{"GOWORK=off"}, "go", args...); err != nil {
		return nil, fmt.Errorf("building the baseline %s: %w", b.Commit, err)
	}
	b.Bin = bin
	b.Build = fmt.Sprintf("git archive %s | tar -x -C DIR/src && go -C DIR/src build -buildvcs=false -o DIR/bin/ %s", b.Commit, strings.Join(pkgs, " "))
	return b, nil
}

// describeBaselineBin checks that dir holds the baseline's commands and
// reads, from the gateway's build information, the commit it was built
// from (Go stamps it when building in a git work tree).
func describeBaselineBin(ctx context.Context, dir string) (*Baseline, error) {
	for _, c := range baselineCommands {
		if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
			return nil, fmt.Errorf("-baseline-bin: %w", err)
		}
	}
	b := &Baseline{Bin: dir}
	info, err := buildinfo.ReadFile(filepath.Join(dir, "gateway"))
	if err != nil {
		return b, nil // not a Go binary with build information: name it by its directory
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	if b.Commit != "" {
		if short, err := gitOutput(ctx, "", "rev-parse", "--short", b.Commit); err == nil {
			b.Commit = short
			b.Subject, _ = gitOutput(ctx, "", "log", "-1", "--format=%s", b.Commit)
		} else if len(b.Commit) > 12 {
			b.Commit = b.Commit[:12]
		}
	}
	return b, nil
}

// gitOutput runs git in dir ("": the current directory) and returns its
// output, trimmed.
func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// runIn runs name with args in dir with env added, and returns an error
// with the tail of its output if it fails.
func runIn(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(string(out), 5))
	}
	return nil
}
