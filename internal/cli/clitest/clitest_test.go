package clitest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/pkg/bus"
)

func TestHelpDefaults(t *testing.T) {
	c := cli.NewCommand("x", "X_", "A test command.")
	c.Flags.String("url", "redis://h:1/0", "a URL (default: this text is not a default)")
	c.Flags.Duration("wait", 1500*time.Millisecond, "how long (0: forever)")
	c.Flags.Int("n", 0, "zero is not shown")
	c.Flags.Bool("on", true, "a bool")
	c.Flags.String("empty", "", "empty is not shown")
	c.Flags.String("quoted", `a "b"`, "quoted")
	got := HelpDefaults(c.Help())
	want := map[string]string{"url": "redis://h:1/0", "wait": "1.5s", "on": "true", "quoted": `a "b"`, "log-level": "info", "log-format": "text"}
	if len(got) != len(want) {
		t.Errorf("HelpDefaults = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("default of -%s = %q, want %q (help:\n%s)", k, got[k], v, c.Help())
		}
	}
}

func TestREADMEDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	md := "# x\n\n### Flags\n\n| flag | default | meaning |\n| --- | --- | --- |\n" +
		"| `-a` | `1s` | one |\n| `-b` | generated | words |\n| `-c`, `-d` | `x`, `y` | two flags |\n| `-e` | `*:*` | star |\n" +
		"\n### Other flags\n\n| `-f` | `2` | elsewhere |\n"
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := READMEDefaults(path, "### Flags")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] != "1s" || got["e"] != "*:*" {
		t.Errorf("READMEDefaults = %v, want a=1s e=*:*", got)
	}
	if _, err := READMEDefaults(path, "### Missing"); err == nil {
		t.Error("no error for a missing heading")
	}
}

// The cluster flags every command shares default to the bus's defaults.
func TestClusterFlagsDefaults(t *testing.T) {
	c := cli.NewCommand("x", "X_", "A test command.")
	cl := c.ClusterFlags()
	CheckDefaults(t, c, map[string]string{
		"prefix": bus.DefaultPrefix, "partitions": strconv.Itoa(bus.DefaultPartitions),
	}, []string{"redis", "redis-mode", "log-level", "log-format"})
	Parse(t, c)
	if cl.Keys() != bus.NewKeys("", 0) {
		t.Errorf("Keys() = %+v, want the bus's default keys", cl.Keys())
	}
}

func TestSame(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1m0s", "60s", true}, {"25s", "25s", true}, {"rt:", "rt:", true},
		{"1m0s", "61s", false}, {"16", "17", false}, {"", "0s", false},
	} {
		if got := same(tc.a, tc.b); got != tc.want {
			t.Errorf("same(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
