// Package clitest checks a command's flag defaults: that the flags filling
// a library's Config default to that library's named defaults (so the two
// cannot drift apart), and that the README's flag tables say the same as
// -h.
package clitest

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/cli"
)

// HelpDefaults returns each flag's default as a usage text printed by
// flag.PrintDefaults shows it, unquoted. Flags whose default is the zero
// value ("", 0, false), which -h does not show, are left out.
func HelpDefaults(help string) map[string]string {
	out := map[string]string{}
	name := ""
	for _, line := range strings.Split(help, "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			name, _, _ = strings.Cut(rest, " ")
			continue
		}
		i := strings.LastIndex(line, " (default ")
		if name == "" || i < 0 || !strings.HasSuffix(line, ")") {
			continue
		}
		v := line[i+len(" (default ") : len(line)-1]
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		out[name] = v
	}
	return out
}

// READMEDefaults returns the flag defaults that the Markdown file at path
// lists in the table under heading (e.g. "### Gateway flags"): for each row
// whose first cell is one flag (`-name`) and whose second is one code span,
// that span's text. Rows that say it in words ("generated", "off") are left
// out.
func READMEDefaults(path, heading string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		return nil, fmt.Errorf("%s: no heading %q", path, heading)
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	out := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name, def := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		if !isCode(name) || !strings.HasPrefix(name, "`-") || !isCode(def) {
			continue
		}
		out[strings.Trim(name, "`-")] = strings.Trim(def, "`")
	}
	return out, nil
}

// isCode says whether s is exactly one code span.
func isCode(s string) bool {
	return len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' && strings.Count(s, "`") == 2
}

// Parse parses args (and the environment) with cmd's flags, failing t on
// an error.
func Parse(t *testing.T, cmd *cli.Command, args ...string) {
	t.Helper()
	if _, ok, err := cmd.Parse(args); !ok || err != nil {
		t.Fatalf("parse %q: ok %v, %v", args, ok, err)
	}
}

// CheckDefaults fails t unless the command's -h shows, for each flag in
// library, the library default given there (its named constant, formatted
// as the flag prints it), and every other flag of the command is listed in
// own (the command's own settings, which fill no library Config field).
func CheckDefaults(t *testing.T, cmd *cli.Command, library map[string]string, own []string) {
	t.Helper()
	shown := HelpDefaults(cmd.Help())
	for name, want := range library {
		if cmd.Flags.Lookup(name) == nil {
			t.Errorf("no flag -%s", name)
			continue
		}
		if shown[name] != want {
			t.Errorf("-h shows -%s's default as %q, want the library's %q", name, shown[name], want)
		}
	}
	cmd.Flags.VisitAll(func(f *flag.Flag) {
		if _, ok := library[f.Name]; !ok && !slices.Contains(own, f.Name) {
			t.Errorf("-%s (default %q) is neither a library default nor listed as the command's own", f.Name, f.DefValue)
		}
	})
}

// CheckREADME fails t unless every default that the README's table under
// heading gives as code is the one the command's -h shows (durations
// compared as durations).
func CheckREADME(t *testing.T, cmd *cli.Command, path, heading string) {
	t.Helper()
	documented, err := READMEDefaults(path, heading)
	if err != nil {
		t.Fatal(err)
	}
	if len(documented) == 0 {
		t.Fatalf("%s: no flag defaults under %q", path, heading)
	}
	shown := HelpDefaults(cmd.Help())
	for name, def := range documented {
		if cmd.Flags.Lookup(name) == nil {
			t.Errorf("%s lists -%s, which the command does not have", path, name)
			continue
		}
		if !same(shown[name], def) {
			t.Errorf("%s gives -%s's default as %q, -h as %q", path, name, def, shown[name])
		}
	}
}

// same says whether two printed defaults are equal: as text, or as
// durations (the README's 60s is -h's 1m0s).
func same(a, b string) bool {
	if a == b {
		return true
	}
	da, err1 := time.ParseDuration(a)
	db, err2 := time.ParseDuration(b)
	return err1 == nil && err2 == nil && da == db
}
