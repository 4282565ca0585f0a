package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime/realtime/pkg/session"
)

// declaredReasons returns the label of every reason but notRejected.
func declaredReasons() []string {
	var names []string
	for r := notRejected + 1; r < numRejectReasons; r++ {
		names = append(names, r.String())
	}
	return names
}

// Every reason has a label of its own, in the style of the others.
func TestRejectReasonNames(t *testing.T) {
	if notRejected.String() != "" {
		t.Errorf("notRejected has the label %q", notRejected.String())
	}
	label := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[string]rejectReason{}
	for r := notRejected + 1; r < numRejectReasons; r++ {
		name := r.String()
		if !label.MatchString(name) {
			t.Errorf("reason %d: label %q (missing from rejectNames?)", r, name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("reasons %d and %d share the label %q", prev, r, name)
		}
		seen[name] = r
	}
	if got := numRejectReasons.String(); got != "unknown" {
		t.Errorf("out of range: %q", got)
	}
}

// Every reason is in the label set of realtime_gateway_rejected_total from
// the start (at 0), and nothing else is.
func TestRejectReasonsExported(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, f := range families {
		if f.GetName() != "realtime_gateway_rejected_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "reason" {
					exported = append(exported, l.GetValue())
				}
			}
			if v := metric.GetCounter().GetValue(); v != 0 {
				t.Errorf("%v: %v before any rejection", metric.GetLabel(), v)
			}
		}
	}
	want := declaredReasons()
	slices.Sort(exported)
	slices.Sort(want)
	if !slices.Equal(exported, want) {
		t.Errorf("exported reasons %v, declared %v", exported, want)
	}
	// Counting goes to the reason's own series; notRejected counts nothing.
	m.rejected(rejectBadSID)
	m.rejected(notRejected)
	if families, err = reg.Gather(); err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "realtime_gateway_rejected_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			want := 0.0
			if metric.GetLabel()[0].GetValue() == "bad_sid" {
				want = 1
			}
			if v := metric.GetCounter().GetValue(); v != want {
				t.Errorf("%v: %v, want %v", metric.GetLabel(), v, want)
			}
		}
	}
}

// README.md lists every reason in its table of rejections, and no reason
// that is not declared.
func TestRejectReasonsInREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n- Rejected input:")
	if start < 0 {
		t.Fatal(`README.md: no "- Rejected input:" item`)
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n- "); end >= 0 {
		section = section[:end]
	}
	var documented []string
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 3 || strings.TrimSpace(cells[1]) == "reason" {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			documented = append(documented, m[1])
		}
	}
	want := declaredReasons()
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("README.md documents the reasons\n%v\ndeclared:\n%v", documented, want)
	}
}

// A refused handshake's reason and its result label follow each other:
// every refusal admission control makes has its reason.
func TestHandshakeRejections(t *testing.T) {
	results := map[string]rejectReason{}
	for r := notRejected + 1; r < numRejectReasons; r++ {
		if strings.HasPrefix(r.String(), handshakePrefix) {
			results[r.handshakeResult()] = r
		}
	}
	for _, result := range []string{resultOverRate, resultQueueFull, resultOverConnections, resultDraining, resultStoreUnavailable} {
		if _, ok := results[result]; !ok {
			t.Errorf("no reason for the handshake result %q", result)
		}
	}
	if got := rejectHandshakeBadOrigin.handshakeResult(); got != "bad_origin" {
		t.Errorf("bad origin: result %q", got)
	}
}

// Every reason is declared in reject.go with a doc comment, and every
// rejection names one of them: no call site passes a literal or a
// conversion, and nothing but Metrics.rejected touches the counter.
func TestRejectReasonsDeclaredOnce(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			inBlock := false
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "rejectReason" {
					inBlock = true
				}
				if !inBlock {
					continue
				}
				if name != "reject.go" {
					t.Errorf("%s: reasons declared outside reject.go", fset.Position(vs.Pos()))
				}
				for _, n := range vs.Names {
					declared++
					if vs.Doc == nil {
						t.Errorf("%s: %s has no doc comment", fset.Position(n.Pos()), n.Name)
					}
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			at := fset.Position(call.Pos())
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "rejectReason" {
				t.Errorf("%s: a conversion to rejectReason", at)
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "Rejected" && name != "metrics.go" {
				t.Errorf("%s: Rejected counted outside Metrics.rejected", at)
			}
			arg := -1
			switch sel.Sel.Name {
			case "rejected":
				arg = 0
			case "reject":
				arg = 3
			}
			if arg >= 0 && arg < len(call.Args) {
				if _, ok := call.Args[arg].(*ast.Ident); !ok {
					t.Errorf("%s: %s given %T, not a declared reason", at, sel.Sel.Name, call.Args[arg])
				}
			}
			return true
		})
	}
	if want := int(numRejectReasons) + 1; declared != want {
		t.Errorf("found %d constants of the reason block, want %d", declared, want)
	}
}

// One answer to a streaming transport whose session could not be opened,
// whichever transport: the packet, the reason counted and logged, and a
// Redis error counted as such.
func TestOpenFailed(t *testing.T) {
	redisDown := errors.New("dial tcp: connection refused")
	cases := []struct {
		name       string
		err        error
		packet     string
		reason     string
		redisError float64
	}{
		{"unknown session", fmt.Errorf("open: %w", session.ErrUnknownSession), "7:::1+0", "unknown_sid", 0},
		{"wrong transport", fmt.Errorf("open: %w", session.ErrWrongTransport), "7:::0", "wrong_transport", 0},
		{"redis error", redisDown, "", "open_failed", 1},
	}
	for _, tc := range cases {
		for _, transport := range []string{TransportWebSocket, TransportFlashSocket, TransportHTMLFile} {
			var logs bytes.Buffer
			g := logGateway(&logs)
			if got := g.openFailed(transport, "sid1", tc.err); got != tc.packet {
				t.Errorf("%s over %s: packet %q, want %q", tc.name, transport, got, tc.packet)
			}
			if n := counterValue(t, g.metrics.Rejected.WithLabelValues(tc.reason)); n != 1 {
				t.Errorf("%s over %s: %s counted %v times", tc.name, transport, tc.reason, n)
			}
			if n := counterValue(t, g.metrics.RedisErrors.WithLabelValues("open")); n != tc.redisError {
				t.Errorf("%s over %s: %v Redis errors, want %v", tc.name, transport, n, tc.redisError)
			}
			line := logs.String()
			for _, want := range []string{"msg=rejected", "reason=" + tc.reason, "transport=" + transport, "sid=sid1"} {
				if !strings.Contains(line, want) {
					t.Errorf("%s over %s: log %q lacks %q", tc.name, transport, line, want)
				}
			}
		}
	}
}

// A poll or POST is told the same about the session errors it can meet;
// any other error is not the client's to hear about.
func TestSessionRefusal(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason rejectReason
		packet string
		ok     bool
	}{
		{session.ErrUnknownSession, rejectUnknownSID, "7:::1+0", true},
		{fmt.Errorf("poll: %w", session.ErrWrongTransport), rejectWrongTransport, "7:::0", true},
		{errors.New("redis: connection pool timeout"), notRejected, "", false},
		{nil, notRejected, "", false},
	} {
		reason, packet, ok := sessionRefusal(tc.err)
		if reason != tc.reason || packet != tc.packet || ok != tc.ok {
			t.Errorf("%v: %v %q %v, want %v %q %v", tc.err, reason, packet, ok, tc.reason, tc.packet, tc.ok)
		}
	}
}
