package worker

import (
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// toolsOnlyFamilies are module path prefixes that only the tools module
// (tools/: the benchmark tools and the deployment tests) may need: gonum/plot
// and the font, LaTeX and PDF modules it draws with, and Kubernetes'
// k8s.io/api and kustomize with their sigs.k8s.io helpers.
var toolsOnlyFamilies = []string{
	"gonum.org/",
	"codeberg.org/go-fonts/",
	"codeberg.org/go-latex/",
	"codeberg.org/go-pdf/",
	"git.sr.ht/~sbinet/",
	"github.com/ajstarks/svgo",
	"k8s.io/",
	"sigs.k8s.io/",
}

// A program that depends on the SDK reads the root module's go.mod, so the
// root module's graph (go list -m all) must not hold what only the tools
// need: none of the families above, and none of the tools module's own
// direct requirements, except those the root's go.mod requires itself
// (the Prometheus client, which the SDK uses too).
func TestSDKModuleGraphLeavesOutTheTools(t *testing.T) {
	graph := goOutput(t, "list", "-m", "-f", "{{.Path}}", "all")
	mods := strings.Fields(graph)
	if len(mods) == 0 || mods[0] != "github.com/realtime/realtime" {
		t.Fatalf("go list -m all does not start with the root module:\n%s", graph)
	}
	mods = mods[1:]
	if !slices.Contains(mods, "github.com/redis/go-redis/v9") {
		t.Fatalf("go list -m all does not list go-redis, which the SDK requires:\n%s", graph)
	}
	_, root := requirements(t, "../../go.mod")
	tools, _ := requirements(t, "../../tools/go.mod")
	if !tools["gonum.org/v1/plot"] || !tools["k8s.io/api"] {
		t.Fatalf("tools/go.mod does not require gonum.org/v1/plot and k8s.io/api directly: %v", tools)
	}
	for _, m := range mods {
		for _, family := range toolsOnlyFamilies {
			if strings.HasPrefix(m, family) {
				t.Errorf("the root module's graph holds %s (%s*), which only the tools module may need", m, family)
			}
		}
		if tools[m] && !root[m] {
			t.Errorf("the root module's graph holds %s, a direct requirement of tools/go.mod that the root's go.mod does not require", m)
		}
	}
}

// requirements reads a go.mod with go mod edit -json and returns the module
// paths it requires directly, and all it requires (// indirect included).
func requirements(t *testing.T, gomod string) (direct, all map[string]bool) {
	t.Helper()
	var f struct {
		Require []struct {
			Path     string
			Indirect bool
		}
	}
	if err := json.Unmarshal([]byte(goOutput(t, "mod", "edit", "-json", gomod)), &f); err != nil {
		t.Fatalf("go mod edit -json %s: %v", gomod, err)
	}
	direct, all = map[string]bool{}, map[string]bool{}
	for _, r := range f.Require {
		all[r.Path] = true
		if !r.Indirect {
			direct[r.Path] = true
		}
	}
	return direct, all
}

// goOutput runs the go command in the package's folder and returns its
// standard output.
func goOutput(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		var stderr []byte
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			stderr = exit.Stderr
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}
