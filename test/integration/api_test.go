package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/realtime/realtime/internal/sioclient"
)

const apiTestKey = "test-api-key-0123456789"

var apiListenRE = regexp.MustCompile(`msg="api listening" addr=(\S+)`)

// apiGateway starts a gateway serving the server HTTP API on a free
// loopback port, its key given in $REALTIME_API_KEY, and returns it with
// the API's base URL.
func apiGateway(c *cluster, node string) (*proc, string) {
	c.t.Helper()
	c.env = append(c.env, "REALTIME_API_KEY="+apiTestKey)
	gw := c.gateway(node, "-api-addr", "127.0.0.1:0", "-api-max-body-bytes", "4096")
	return gw, "http://" + gw.logged(apiListenRE)
}

// The official client 0.9.16, over websocket and xhr-polling, gets what the
// server HTTP API emits, sends and sends as JSON, to itself, to a room, to
// a namespace with an exception; join and leave through the API change
// what rooms reach it; list and count agree with the connected clients; a
// disconnect through the API ends its session as a server disconnect does
// (disconnect, no reconnect); and the API refuses requests without the key
// or with a wrong one (test/node/server-api.js).
func TestServerAPIOfficialClient(t *testing.T) {
	// Parallel: each transport has a cluster of its own (the API key
	// through c.env, not the process's environment).
	t.Parallel()
	script := nodeScript(t, "server-api.js")
	for _, transport := range []string{"websocket", "xhr-polling"} {
		t.Run(transport, func(t *testing.T) {
			c := newCluster(t)
			gw, api := apiGateway(c, "a")
			c.worker("w1", "echo")
			out := runNode(t, script, "--url", urls(gw)[0], "--api", api, "--key", apiTestKey, "--transport", transport)
			if m := summaryRE.FindStringSubmatch(out); m == nil || m[2] != "0" || m[1] != "10" {
				t.Fatalf("unexpected result:\n%s", out)
			}
			t.Logf("%s", lastLine(out))
		})
	}
}

// A gateway refuses to start the API without a key on an address that is
// not loopback, and says why.
func TestServerAPINeedsKeyOffLoopback(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "gateway"), "-addr", "127.0.0.1:0", "-admin-addr", "",
		"-redis", c.redis.URL(), "-api-addr", "0.0.0.0:0")
	cmd.Env = append(os.Environ(), "REALTIME_API_KEY=", "GATEWAY_API_KEY=")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Errorf("exit code %d (%v), want 1", code, err)
	}
	if !strings.Contains(string(out), "refusing to serve the HTTP API without a key on a non-loopback address") {
		t.Errorf("the error does not say why:\n%s", out)
	}
}

// apiSpec loads docs/api.yaml and checks it is valid OpenAPI 3, with its
// server set to base.
func apiSpec(t *testing.T, base string) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../docs/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("docs/api.yaml is not valid OpenAPI 3: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// apiChecker performs API requests and validates each answer (and each
// request meant to be valid) against docs/api.yaml.
type apiChecker struct {
	t      *testing.T
	base   string
	doc    *openapi3.T
	router routers.Router
	seen   map[string]bool // "METHOD path status" of the answers validated
}

// call performs a request with key ("" none); valid says the request
// itself must satisfy the spec. It returns the status and decoded answer.
func (a *apiChecker) call(method, path, key, body string, valid bool) (int, map[string]any) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	ctx := context.Background()
	var input *openapi3filter.RequestValidationInput
	if route, params, err := a.router.FindRoute(req); err == nil {
		input = &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
				// Send the request as written, without the defaults filled in.
				SkipSettingDefaults: true}}
		if valid {
			if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
				a.t.Errorf("%s %s %s: the spec refuses a valid request: %v", method, path, body, err)
			}
			req.Body = io.NopCloser(strings.NewReader(body))
		}
	} else if valid {
		a.t.Errorf("%s %s: not in the spec: %v", method, path, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		a.t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("%s %s: answer %q is not a JSON object", method, path, raw)
	}
	if input != nil {
		err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
			RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(raw)), Options: &openapi3filter.Options{IncludeResponseStatus: true}})
		if err != nil {
			a.t.Errorf("%s %s %s: the answer %d %s does not match docs/api.yaml: %v", method, path, body, resp.StatusCode, raw, err)
		}
		a.seen[method+" "+input.Route.Path+" "+resp.Status[:3]] = true
	} else {
		// A method or path the spec does not have: the answer is still an Error.
		var v any
		_ = json.Unmarshal(raw, &v)
		if err := a.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			a.t.Errorf("%s %s: the answer %s is not an Error of docs/api.yaml: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out
}

// The running gateway's answers to every endpoint, and to each kind of
// error, match docs/api.yaml (kin-openapi's validator); the requests the
// API accepts are ones the spec allows.
func TestServerAPIOpenAPI(t *testing.T) {
	// Parallel: a cluster of its own (its environment through c.env,
	// not the process's); most of its time is Redis stalled.
	t.Parallel()
	c := newCluster(t)
	gw, base := apiGateway(c, "a")
	doc, router := apiSpec(t, base)
	a := &apiChecker{t: t, base: base, doc: doc, router: router, seen: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sids []string
	for range 3 {
		cl, err := sioclient.Dial(ctx, "websocket", urls(gw)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		sids = append(sids, cl.SID)
	}
	waitUntil(t, "3 sockets connected", 10*time.Second, func() error {
		if _, got := a.call("GET", "/v1/count", apiTestKey, "", true); got["count"] != 3.0 {
			return fmt.Errorf("count: %v", got)
		}
		return nil
	})
	s0, s1 := sids[0], sids[1]
	k := apiTestKey
	for _, tc := range []struct {
		method, path, body string
		key                string
		valid              bool
		status             int
	}{
		{"POST", "/v1/join", `{"socket":"` + s0 + `","room":"r"}`, k, true, 200},
		{"POST", "/v1/emit", `{"socket":"` + s0 + `","event":"e","args":[1,{"a":null}]}`, k, true, 200},
		{"POST", "/v1/emit", `{"room":"r","except":"` + s1 + `","event":"e"}`, k, true, 200},
		{"POST", "/v1/send", `{"namespace":"","message":"m"}`, k, true, 200},
		{"POST", "/v1/json", `{"room":"r","data":[1,"x"]}`, k, true, 200},
		{"GET", "/v1/sockets?limit=2", "", k, true, 200},
		{"GET", "/v1/sockets?room=r&cursor=0", "", k, true, 200},
		{"GET", "/v1/rooms?socket=" + s0, "", k, true, 200},
		{"GET", "/v1/rooms?limit=1000", "", k, true, 200},
		{"GET", "/v1/count?room=r", "", k, true, 200},
		{"GET", "/v1/count?namespace=/chat", "", k, true, 200},
		{"POST", "/v1/leave", `{"socket":"` + s0 + `","room":"r"}`, k, true, 200},
		{"POST", "/v1/disconnect", `{"socket":"` + s1 + `"}`, k, true, 200},
		{"POST", "/v1/emit", `{"event":"e"}`, "", true, 401},
		{"GET", "/v1/count", "", "wrong", true, 401},
		{"POST", "/v1/emit", `{"event":`, k, false, 400},
		{"POST", "/v1/send", `{"message":1}`, k, false, 400},
		{"POST", "/v1/json", `{"data":1,"extra":2}`, k, false, 400},
		{"POST", "/v1/join", `{"socket":"` + s0 + `"}`, k, false, 400},
		{"POST", "/v1/leave", `{"socket":"` + s0 + `","room":""}`, k, false, 400},
		{"POST", "/v1/disconnect", `{}`, k, false, 400},
		{"GET", "/v1/sockets?limit=5000", "", k, false, 400},
		{"GET", "/v1/rooms?socket=", "", k, false, 400},
		{"GET", "/v1/count?namespace=chat", "", k, false, 400},
		{"POST", "/v1/emit", `{"event":"e","socket":"nosuchsocket"}`, k, true, 404},
		{"POST", "/v1/send", `{"message":"m","socket":"nosuchsocket"}`, k, true, 404},
		{"POST", "/v1/json", `{"data":1,"socket":"nosuchsocket"}`, k, true, 404},
		{"POST", "/v1/join", `{"socket":"nosuchsocket","room":"r"}`, k, true, 404},
		{"POST", "/v1/leave", `{"socket":"` + s0 + `","room":"r","namespace":"/chat"}`, k, true, 404},
		{"POST", "/v1/disconnect", `{"socket":"` + s1 + `"}`, k, true, 404},
		{"GET", "/v1/rooms?socket=nosuchsocket", "", k, true, 404},
		{"POST", "/v1/emit", `{"event":"e","args":["` + strings.Repeat("x", 5000) + `"]}`, k, false, 413},
		{"POST", "/v1/send", `{"message":"` + strings.Repeat("x", 5000) + `"}`, k, false, 413},
		{"GET", "/v1/emit", "", k, false, 405},
		{"POST", "/v1/count", "", k, false, 405},
		{"DELETE", "/v1/sockets", "", k, false, 405},
		{"GET", "/v1/nothing", "", k, false, 404},
	} {
		status, got := a.call(tc.method, tc.path, tc.key, tc.body, tc.valid)
		if status != tc.status {
			t.Errorf("%s %s %.80s: %d %v, want %d", tc.method, tc.path, tc.body, status, got, tc.status)
		}
	}
	// Redis stalled: 503 within the gateway's Redis wait, not a hang.
	c.redis.Pause(t)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/count", ""}, {"POST", "/v1/emit", `{"event":"e"}`},
	} {
		start := time.Now()
		if status, got := a.call(tc.method, tc.path, k, tc.body, true); status != 503 || got["error"] != "redis_unavailable" {
			t.Errorf("%s %s with Redis stalled: %d %v", tc.method, tc.path, status, got)
		}
		took := time.Since(start)
		t.Logf("%s %s with Redis stalled: answered in %v", tc.method, tc.path, took)
		if took > 10*time.Second {
			t.Errorf("%s %s with Redis stalled: answered after %v", tc.method, tc.path, took)
		}
	}
	c.redis.Resume(t)
	// Redis gone: 503, as documented.
	c.redis.Kill(t)
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/count", ""}, {"GET", "/v1/sockets", ""}, {"POST", "/v1/emit", `{"event":"e"}`},
	} {
		if status, got := a.call(tc.method, tc.path, k, tc.body, true); status != 503 || got["error"] != "redis_unavailable" {
			t.Errorf("%s %s without Redis: %d %v", tc.method, tc.path, status, got)
		}
	}
	// Every documented operation was seen answering 200.
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !a.seen[method+" "+path+" 200"] {
				t.Errorf("%s %s was never validated with a 200 answer", method, path)
			}
		}
	}
}
