package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/internal/freeport"
)

// byHandHeading is the README section whose commands TestREADMERunsByHand
// runs.
const byHandHeading = "## Running the cluster by hand"

// readmeCommands returns the commands of the first ```sh block under
// heading in the Markdown file at path, one per line with continuation
// lines joined, comments and a trailing & removed, split into words as the
// shell would (plain words, "double" and 'single' quotes).
func readmeCommands(path, heading string) ([][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		return nil, fmt.Errorf("%s: no section %q", path, heading)
	}
	text = text[i+len(heading)+2:]
	start := strings.Index(text, "```sh\n")
	if start < 0 {
		return nil, fmt.Errorf("%s: no sh block under %q", path, heading)
	}
	text = text[start+len("```sh\n"):]
	end := strings.Index(text, "```")
	if end < 0 {
		return nil, fmt.Errorf("%s: unterminated sh block under %q", path, heading)
	}
	var cmds [][]string
	for _, line := range strings.Split(strings.ReplaceAll(text[:end], "\\\n", " "), "\n") {
		words, err := shellWords(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		if n := len(words); n > 0 && words[n-1] == "&" {
			words = words[:n-1]
		}
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
	}
	return cmds, nil
}

// shellWords splits one shell line into words: blanks separate words,
// quotes group them, '#' at the start of a word begins a comment, and a
// trailing '&' is a word of its own.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == ' ' || ch == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case ch == '#' && !inWord:
			return words, nil
		case ch == '&' && !inWord:
			words = append(words, "&")
		case ch == '"' || ch == '\'':
			j := strings.IndexByte(line[i+1:], ch)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c", ch)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`redis-server --port 6379 --save "" &`, []string{"redis-server", "--port", "6379", "--save", "", "&"}},
		{`haproxy -f a.cfg   # http://x/`, []string{"haproxy", "-f", "a.cfg"}},
		{`echo 'a b'"c"d`, []string{"echo", "a bcd"}},
		{`   `, nil},
	} {
		got, err := shellWords(tc.line)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := shellWords(`a "b`); err == nil {
		t.Error(`shellWords("a \"b") did not fail`)
	}
}

// portRE matches a host:port argument or configuration word.
var portRE = regexp.MustCompile(`^([A-Za-z0-9.\-]*|\[[0-9a-fA-F:]*\]):(\d{1,5})$`)

// byHandDefaults are the listen addresses the README's processes take from
// their defaults when the command does not give the flag.
var byHandDefaults = map[string]map[string]string{
	"bin/gateway": {"addr": "localhost:8000", "admin-addr": cli.DefaultGatewayAdminAddr},
	"bin/worker":  {"admin-addr": cli.DefaultWorkerAdminAddr},
}

// The README's "Running the cluster by hand" runs as written: no two of its
// processes listen on one port (flags given or defaults), the shipped
// haproxy.cfg points at the gateways' client and admin ports, the gateways
// and the worker find the README's Redis with their default -redis, and a
// client through the balancer gets its echo over websocket and xhr-polling.
// Only ports change: each port the section uses becomes a free one (in the
// commands, in haproxy.cfg, and for the defaults through the commands'
// environment variables). `make build client-script` is checked with
// `make -n`; the binaries are the ones the suite builds from the same
// ./cmd/... (with the race detector under make test), and the client script
// is test/node_modules' (nodeScript checks it is installed).
func TestREADMERunsByHand(t *testing.T) {
	script := nodeScript(t, "echo-contract.js")
	for _, bin := range []string{"redis-server", "haproxy"} {
		if _, err := exec.LookPath(bin); err != nil {
			need(t, bin+" is not installed")
		}
	}
	root, _ := filepath.Abs("../..")
	cmds, err := readmeCommands(filepath.Join(root, "README.md"), byHandHeading)
	if err != nil {
		t.Fatal(err)
	}

	// Every port a process listens on, as written, and who listens.
	listens := map[string]string{}
	listen := func(who, port string) {
		if other, ok := listens[port]; ok {
			t.Fatalf("README %q: %q and %q both listen on port %s", byHandHeading, other, who, port)
		}
		listens[port] = who
	}
	var redisPort, haproxyCfg string
	for _, words := range cmds {
		who := strings.Join(words, " ")
		switch words[0] {
		case "make":
			out, err := exec.Command("make", append([]string{"-n", "-C", root}, words[1:]...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: not a make target: %v\n%s", who, err, out)
			}
		case "redis-server":
			for i, w := range words {
				if w == "--port" && i+1 < len(words) {
					redisPort = words[i+1]
					listen(who, redisPort)
				}
			}
		case "bin/gateway", "bin/worker":
			given := map[string]bool{}
			for i, w := range words {
				name := strings.TrimLeft(w, "-")
				if strings.HasPrefix(w, "-") && i+1 < len(words) {
					given[name] = true
					if _, isListen := byHandDefaults[words[0]][name]; isListen {
						m := portRE.FindStringSubmatch(words[i+1])
						if m == nil {
							t.Fatalf("%s: -%s %q is not host:port", who, name, words[i+1])
						}
						listen(who, m[2])
					}
				}
			}
			for name, addr := range byHandDefaults[words[0]] {
				if !given[name] {
					listen(who+" (default -"+name+")", portRE.FindStringSubmatch(addr)[2])
				}
			}
		case "haproxy":
			for i, w := range words {
				if w == "-f" && i+1 < len(words) {
					haproxyCfg = words[i+1]
				}
			}
		default:
			t.Fatalf("README %q: this test does not know the command %q", byHandHeading, who)
		}
	}
	if redisPort == "" || haproxyCfg == "" {
		t.Fatalf("README %q starts no redis-server --port or no haproxy -f", byHandHeading)
	}
	cfg, err := os.ReadFile(filepath.Join(root, haproxyCfg))
	if err != nil {
		t.Fatal(err)
	}
	var lbPort string
	for _, line := range strings.Split(string(cfg), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "bind" {
			lbPort = portRE.FindStringSubmatch(f[1])[2]
			listen("haproxy", lbPort)
		}
	}

	// Each port as written becomes a free one.
	free := map[string]string{}
	for port := range listens {
		p, err := freeport.Loopback()
		if err != nil {
			t.Fatal(err)
		}
		free[port] = strconv.Itoa(p)
	}
	freePort := func(port, where string) string {
		p, ok := free[port]
		if !ok {
			t.Fatalf("%s: port %s is not one the README's processes listen on (%v)", where, port, listens)
		}
		return p
	}
	// The servers of haproxy.cfg are the gateways: the client port a
	// gateway listens on, checked on its admin port.
	var derived []string
	for _, line := range strings.Split(string(cfg), "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			if m := portRE.FindStringSubmatch(w); m != nil && (f[0] == "bind" || f[0] == "server") {
				f[i] = m[1] + ":" + freePort(m[2], haproxyCfg+": "+line)
			}
			if w == "port" && i > 0 && f[i-1] == "check" && i+1 < len(f) {
				if !strings.HasPrefix(listens[f[i+1]], "bin/gateway") {
					t.Fatalf("%s: %q checks port %s, which no gateway of the README listens on", haproxyCfg, line, f[i+1])
				}
				f[i+1] = freePort(f[i+1], haproxyCfg+": "+line)
			}
		}
		if len(f) > 0 && (f[0] == "bind" || f[0] == "server") {
			if f[0] == "server" && !strings.HasPrefix(listens[portRE.FindStringSubmatch(strings.Fields(line)[2])[2]], "bin/gateway") {
				t.Fatalf("%s: %q forwards to a port no gateway of the README listens on", haproxyCfg, line)
			}
			line = "    " + strings.Join(f, " ")
		}
		derived = append(derived, line)
	}
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(derived, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}

	// The processes find Redis with their default -redis: it must name the
	// README's redis-server port.
	def := cli.NewCommand("x", "X_", "")
	def.ClusterFlags()
	defURL := def.Flags.Lookup("redis").DefValue
	if !strings.Contains(defURL, "localhost:"+redisPort+"/") {
		t.Fatalf("the default -redis %s is not the README's redis-server on port %s", defURL, redisPort)
	}
	t.Setenv("REDIS_URL", strings.Replace(defURL, ":"+redisPort+"/", ":"+free[redisPort]+"/", 1))
	for bin, defaults := range byHandDefaults {
		prefix := strings.ToUpper(strings.TrimPrefix(bin, "bin/")) + "_"
		for name, addr := range defaults {
			m := portRE.FindStringSubmatch(addr)
			if p, ok := free[m[2]]; ok && strings.HasPrefix(listens[m[2]], bin) {
				t.Setenv(cli.EnvName(prefix, name), m[1]+":"+p)
			}
		}
	}

	c := &cluster{t: t, dir: root}
	var lbURL string
	for _, words := range cmds {
		args := append([]string(nil), words[1:]...)
		for i, a := range args {
			if m := portRE.FindStringSubmatch(a); m != nil {
				args[i] = m[1] + ":" + free[m[2]]
			}
			if i > 0 && args[i-1] == "--port" {
				args[i] = free[a]
			}
			if i > 0 && args[i-1] == "-f" && words[0] == "haproxy" {
				args[i] = cfgPath
			}
		}
		switch words[0] {
		case "redis-server":
			startListening(t, c, "redis-server", free[redisPort], args...)
		case "bin/gateway":
			c.start(strings.Join(words, " "), listenRE, binary(t, "gateway"), args...)
		case "bin/worker":
			c.start(strings.Join(words, " "), workerRE, binary(t, "worker"), args...)
		case "haproxy":
			startListening(t, c, "haproxy", free[lbPort], args...)
			lbURL = "http://127.0.0.1:" + free[lbPort]
		}
	}
	time.Sleep(1500 * time.Millisecond) // haproxy's first health checks pass

	for _, transport := range []string{"websocket", "xhr-polling"} {
		if out := runNode(t, script, "--urls", lbURL, "--transport", transport); !contractPassed(out) {
			t.Fatalf("%s through the README's haproxy:\n%s", transport, out)
		}
	}
	if status, body, _ := get(t, lbURL+"/"); status != 200 || !strings.Contains(body, "realtime chat") {
		t.Errorf("the chat page through the README's haproxy: %d", status)
	}
	// The client script and, next to it in the npm package, the minified
	// build that old pages load.
	for _, name := range []string{"socket.io.js", "socket.io.min.js"} {
		want, err := os.ReadFile(filepath.Join(root, "test/node_modules/socket.io-client/dist", name))
		if err != nil {
			t.Fatal(err)
		}
		if status, body, _ := get(t, lbURL+"/socket.io/"+name); status != 200 || body != string(want) {
			t.Errorf("/socket.io/%s through the README's haproxy: %d, %d bytes, want the npm package's %d", name, status, len(body), len(want))
		}
	}
}

// startListening runs a program that is not ours (redis-server, haproxy)
// from c.dir, waits until port accepts connections on loopback, and kills
// it when the test ends.
func startListening(t *testing.T, c *cluster, name, port string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("--- %s %s ---\n%s", name, strings.Join(args, " "), logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			conn.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited early", name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 10s", name, port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
