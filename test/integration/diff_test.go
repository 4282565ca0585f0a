package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// reference starts the reference socket.io 0.9.19 server running the echo
// contract and returns its base URL.
func reference(t *testing.T, env ...string) string {
	t.Helper()
	script := nodeScript(t, "../reference/echo-server.js")
	cmd := exec.Command("node", script)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		return "http://127.0.0.1:" + p
	case <-time.After(15 * time.Second):
		t.Fatal("reference server did not start")
	}
	return ""
}

// exchange is one request and what came back, with the session id masked.
type exchange struct {
	name   string
	status int
	ctype  string
	body   string
}

func (e exchange) String() string {
	return fmt.Sprintf("%s: %d %q %q", e.name, e.status, e.ctype, e.body)
}

// transcript runs the same raw exchanges against one server.
type transcript struct {
	t    *testing.T
	base string
	sid  string
	out  []exchange
	wait time.Duration // how long pollUntil waits; default 10s
}

func (tr *transcript) mask(s string) string {
	if tr.sid != "" {
		s = strings.ReplaceAll(s, tr.sid, "<sid>")
	}
	return s
}

func (tr *transcript) do(name, method, path, ctype, body string, hdr map[string]string) exchange {
	tr.t.Helper()
	req, err := http.NewRequest(method, tr.base+strings.ReplaceAll(path, "<sid>", tr.sid), strings.NewReader(body))
	if err != nil {
		tr.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	status, b, h := doReq(tr.t, req)
	e := exchange{name: name, status: status, ctype: h.Get("Content-Type"), body: tr.mask(b)}
	if o := h.Get("Access-Control-Allow-Origin"); o != "" {
		e.ctype += " acao=" + o + " acac=" + h.Get("Access-Control-Allow-Credentials")
	}
	tr.out = append(tr.out, e)
	return e
}

// pollUntil polls until the collected packets contain every wanted
// substring, and records the packets in the order they came.
func (tr *transcript) pollUntil(name, transport string, want ...string) {
	tr.t.Helper()
	var got []string
	wait := tr.wait
	if wait == 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		path := fmt.Sprintf("/socket.io/1/%s/<sid>?t=%d", transport, time.Now().UnixNano())
		req, _ := http.NewRequest("GET", tr.base+strings.ReplaceAll(path, "<sid>", tr.sid), nil)
		_, body, _ := doReq(tr.t, req)
		for _, p := range splitPayload(body) {
			if p != "8::" {
				got = append(got, tr.mask(p))
			}
		}
		all := strings.Join(got, "\n")
		done := true
		for _, w := range want {
			done = done && strings.Contains(all, w)
		}
		if done {
			break
		}
	}
	tr.out = append(tr.out, exchange{name: name, status: 200, body: strings.Join(got, " | ")})
}

// splitPayload splits a polling payload into packets (test-side decoder,
// independent of pkg/protocol).
func splitPayload(s string) []string {
	if !strings.HasPrefix(s, "\ufffd") {
		return []string{s}
	}
	var out []string
	for strings.HasPrefix(s, "\ufffd") {
		s = s[len("\ufffd"):]
		i := strings.Index(s, "\ufffd")
		var n int
		fmt.Sscanf(s[:i], "%d", &n)
		s = s[i+len("\ufffd"):]
		r := []rune(s)
		// n counts UTF-16 units; runes above the BMP count two.
		units, k := 0, 0
		for k < len(r) && units < n {
			if r[k] > 0xffff {
				units += 2
			} else {
				units++
			}
			k++
		}
		out = append(out, string(r[:k]))
		s = string(r[k:])
	}
	return out
}

var frameLen = regexp.MustCompile("\ufffd[0-9]+\ufffd")

// jsonpUntil polls over jsonp-polling until a body contains want, and
// records the raw bodies (their escaping is part of the contract).
func (tr *transcript) jsonpUntil(name, want string) {
	tr.t.Helper()
	var bodies []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		path := fmt.Sprintf("/socket.io/1/jsonp-polling/<sid>?t=%d&i=1", time.Now().UnixNano())
		req, _ := http.NewRequest("GET", tr.base+strings.ReplaceAll(path, "<sid>", tr.sid), nil)
		_, body, _ := doReq(tr.t, req)
		// Session ids differ in length between servers, so frame lengths
		// are masked too (they are checked by the codec tests and by the
		// official client).
		body = frameLen.ReplaceAllString(tr.mask(body), "\ufffd#\ufffd")
		if !strings.Contains(body, `"8::"`) {
			bodies = append(bodies, body)
		}
		if strings.Contains(body, want) {
			break
		}
	}
	tr.out = append(tr.out, exchange{name: name, status: 200, body: strings.Join(bodies, " | ")})
}

func (tr *transcript) handshake() {
	tr.t.Helper()
	e := tr.do("handshake", "GET", "/socket.io/1/?t=1", "", "", nil)
	sid, _, _ := strings.Cut(e.body, ":")
	tr.sid = sid
	tr.out[len(tr.out)-1].body = tr.mask(e.body)
}

// run performs the differential script against one server.
func run(t *testing.T, base string) []exchange {
	tr := &transcript{t: t, base: base}
	origin := map[string]string{"Origin": "http://example.com"}
	tr.do("welcome", "GET", "/socket.io/", "", "", nil)
	tr.do("bad protocol", "GET", "/socket.io/2/", "", "", nil)
	tr.handshake()
	tr.do("handshake with origin", "GET", "/socket.io/1/?t=2", "", "", origin)
	tr.out[len(tr.out)-1].body = regexp.MustCompile(`^[^:]+`).ReplaceAllString(tr.out[len(tr.out)-1].body, "<sid2>")
	jp := tr.do("jsonp handshake", "GET", "/socket.io/1/?t=3&jsonp=4", "", "", nil)
	tr.out[len(tr.out)-1].body = regexp.MustCompile(`"[^:"]+:`).ReplaceAllString(jp.body, `"<sid3>:`)
	tr.do("unknown sid poll", "GET", "/socket.io/1/xhr-polling/nosuchsid?t=4", "", "", nil)
	tr.do("unknown sid jsonp poll", "GET", "/socket.io/1/jsonp-polling/nosuchsid?t=4&i=2", "", "", nil)
	tr.do("first poll", "GET", "/socket.io/1/xhr-polling/<sid>?t=5", "", "", origin)
	tr.pollUntil("welcome event", "xhr-polling", `"welcome"`)
	tr.do("POST plain-ack event", "POST", "/socket.io/1/xhr-polling/<sid>?t=6", "text/plain;charset=UTF-8",
		`5:1::{"name":"echo","args":[1,"x"]}`, origin)
	tr.pollUntil("plain ack and echo", "xhr-polling", "6:::1", `{"name":"echo"`)
	tr.do("POST framed: data-ack event, message, json", "POST", "/socket.io/1/xhr-polling/<sid>?t=7", "text/plain;charset=UTF-8",
		frame(`5:2+::{"name":"echo","args":["é😀"]}`, "3:::hi", `4:::{"k":[1]}`), nil)
	tr.pollUntil("data ack, message, json", "xhr-polling", `6:::2+["é😀"]`, "3:::hi", `4:::{"k":[1]}`)
	tr.do("POST namespace connect", "POST", "/socket.io/1/xhr-polling/<sid>?t=8", "text/plain;charset=UTF-8", "1::/chat", nil)
	tr.pollUntil("namespace echo and welcome", "xhr-polling", "1::/chat", `5::/chat:{"name":"welcome"`)
	tr.do("POST namespaced data-ack event", "POST", "/socket.io/1/xhr-polling/<sid>?t=9", "text/plain;charset=UTF-8",
		`5:3+:/chat:{"name":"whoami"}`, nil)
	tr.pollUntil("namespaced ack", "xhr-polling", "6::/chat:3+")
	tr.do("disconnect request", "GET", "/socket.io/1/xhr-polling/<sid>?disconnect=1", "", "", nil)

	// jsonp-polling session.
	tr.handshake()
	tr.do("jsonp first poll", "GET", "/socket.io/1/jsonp-polling/<sid>?t=10&i=1", "", "", nil)
	tr.do("jsonp POST", "POST", "/socket.io/1/jsonp-polling/<sid>?t=11&i=1", "application/x-www-form-urlencoded",
		"d="+url.QueryEscape(`"5:4+::{\"name\":\"echo\",\"args\":[\"</script>\"]}"`), nil)
	tr.jsonpUntil("jsonp ack with </script>", `6:::4+`)

	// htmlfile: the first chunks of the stream.
	tr.handshake()
	tr.out = append(tr.out, exchange{name: "htmlfile stream start", status: 200, body: htmlfileStart(t, base, tr.sid)})

	// websocket.
	tr.handshake()
	tr.out = append(tr.out, websocketExchange(t, base, tr.sid, tr.mask)...)
	tr.out = append(tr.out, websocketExchange(t, base, "nosuchsid", tr.mask)...)
	return tr.out
}

func htmlfileStart(t *testing.T, base, sid string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/socket.io/1/htmlfile/"+sid+"?t=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(sb.String(), "welcome") {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.Header.Get("Content-Type") + " " + strings.ReplaceAll(sb.String(), sid, "<sid>")
}

func websocketExchange(t *testing.T, base, sid string, mask func(string) string) []exchange {
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/1/websocket/" + sid
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	defer ws.Close()
	var got []string
	read := func() string {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			return "<closed>"
		}
		return mask(string(b))
	}
	first := read()
	got = append(got, first)
	if first == "1::" {
		got = append(got, read()) // welcome
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`5:3+::{"name":"echo","args":[1]}`))
		got = append(got, read())
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`3:4::plain`))
		got = append(got, read(), read())
	} else {
		got = append(got, read())
	}
	return []exchange{{name: "websocket " + mask(sid), status: resp.StatusCode, body: strings.Join(got, " | ")}}
}

// The same raw exchanges against the reference socket.io 0.9.19 and against
// our cluster give the same answers, after masking session ids. Where we
// deliberately differ, the difference is listed and asserted.
func TestDifferentialAgainstReference(t *testing.T) {
	ref := reference(t)
	c := newCluster(t)
	g := c.gateway("a")
	c.worker("w1", "echo")
	theirs := run(t, ref)
	ours := run(t, "http://"+g.addr)
	// Deliberate differences: name -> what we answer instead, and why.
	deliberate := map[string]string{
		"welcome":      "we label plain-text answers text/plain; the reference sends no Content-Type",
		"bad protocol": "likewise",
		"jsonp ack with </script>": "we escape < > & U+2028 U+2029 in jsonp strings (same string once decoded; " +
			"cannot close a script element); the reference sends </script> raw",
	}
	if len(theirs) != len(ours) {
		t.Fatalf("transcripts differ in length: %d vs %d", len(theirs), len(ours))
	}
	for i := range theirs {
		t.Logf("%s", ours[i])
		if theirs[i] == ours[i] {
			continue
		}
		if why, ok := deliberate[theirs[i].name]; ok {
			t.Logf("deliberate difference in %s (%s):\n reference %s\n ours      %s", theirs[i].name, why, theirs[i], ours[i])
			continue
		}
		t.Errorf("differs:\n reference %s\n ours      %s", theirs[i], ours[i])
	}
}

// Where the reference is wrong (protocol-0.9.md), we do better: each case
// runs against both, asserts our answer, and records what the reference did.
func TestWhereTheReferenceIsWrong(t *testing.T) {
	ref := reference(t, "POLLING_DURATION=2")
	c := newCluster(t)
	g := c.gateway("a")
	c.worker("w1", "echo")
	ours := "http://" + g.addr
	quick := &http.Client{Timeout: 2 * time.Second}

	// CORS preflight: the reference never answers OPTIONS.
	for _, base := range []string{ref, ours} {
		req, _ := http.NewRequest("OPTIONS", base+"/socket.io/1/xhr-polling/x", nil)
		req.Header.Set("Origin", "http://example.com")
		resp, err := quick.Do(req)
		if base == ours {
			if err != nil || resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://example.com" {
				t.Fatalf("our OPTIONS: %v %v", resp, err)
			}
		} else {
			t.Logf("reference OPTIONS: %v (err %v)", statusOf(resp), err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}

	// A POST before the first GET: the reference loses its packets.
	for _, base := range []string{ref, ours} {
		tr := &transcript{t: t, base: base, wait: 2 * time.Second}
		tr.handshake()
		tr.do("early POST", "POST", "/socket.io/1/xhr-polling/<sid>?t=1", "text/plain", `5:1+::{"name":"echo","args":["early"]}`, nil)
		tr.pollUntil("early ack", "xhr-polling", `6:::1+["early"]`)
		got := tr.out[len(tr.out)-1].body
		if base == ours && !strings.Contains(got, `6:::1+["early"]`) {
			t.Fatalf("our early POST was lost: %q", got)
		}
		if base == ref {
			t.Logf("reference after an early POST: %q", got)
		}
	}

	// A jsonp POST whose d is not JSON: the reference process crashes.
	for _, base := range []string{ours, ref} {
		tr := &transcript{t: t, base: base}
		tr.handshake()
		tr.do("jsonp poll", "GET", "/socket.io/1/jsonp-polling/<sid>?t=1&i=0", "", "", nil)
		req, _ := http.NewRequest("POST", base+"/socket.io/1/jsonp-polling/"+tr.sid+"?t=2&i=0", strings.NewReader("d=%7Bnot%20json"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := quick.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		time.Sleep(200 * time.Millisecond)
		_, herr := quick.Get(base + "/socket.io/1/?t=3")
		if base == ours {
			if err != nil || resp.StatusCode != http.StatusBadRequest || herr != nil {
				t.Fatalf("our bad jsonp POST: %v %v; alive after: %v", statusOf(resp), err, herr)
			}
		} else {
			t.Logf("reference bad jsonp POST: %v (err %v); a handshake after it: %v", statusOf(resp), err, herr)
		}
	}
}

func statusOf(r *http.Response) string {
	if r == nil {
		return "no answer"
	}
	return r.Status
}
