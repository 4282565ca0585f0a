package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/bus"
)

// Heartbeat timers of these tests: the gateway's flags (hbFlags) and the
// reference's environment.
const (
	hbInterval = time.Second
	hbTimeout  = 3 * time.Second
	// hbLate is how long after the heartbeat timeout a silent session may
	// still be connected: the reference, which times out from the heartbeat
	// it sent rather than from the last sign of life, takes up to an
	// interval more (about 4 s here).
	hbLate = hbInterval + 500*time.Millisecond
	// hbClock is how much earlier than the timeout a session may end: the
	// times a POST records (lh) and signals carry are whole milliseconds.
	hbClock = 2 * time.Millisecond
)

var hbFlags = []string{"-heartbeat-interval", "1s", "-heartbeat-timeout", "3s",
	"-transports", "websocket,flashsocket,htmlfile,xhr-polling"}

// htmlfileStream is an htmlfile stream opened with a raw GET, as old IE's
// iframe does; a goroutine reads it and hands on each packet.
type htmlfileStream struct {
	packets chan string   // every packet, in order
	ended   chan struct{} // closed when the response ended
	end     time.Time     // when it ended; read after ended is closed
}

var htmlfileScript = regexp.MustCompile(`<script>_\(("(?:[^"\\]|\\.)*")\);</script>`)

// openHTMLFile opens an htmlfile stream at base (a gateway or the
// reference) and returns once its first packet (1::) arrived.
func openHTMLFile(t *testing.T, base, sid string) *htmlfileStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/socket.io/1/htmlfile/"+sid+"?t=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("htmlfile GET: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("htmlfile GET: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	h := &htmlfileStream{packets: make(chan string, 1024), ended: make(chan struct{})}
	go func() {
		defer resp.Body.Close()
		var buf []byte
		chunk := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(chunk)
			buf = append(buf, chunk[:n]...)
			for {
				m := htmlfileScript.FindSubmatchIndex(buf)
				if m == nil {
					break
				}
				var p string
				if json.Unmarshal(buf[m[2]:m[3]], &p) != nil {
					p = "<bad script " + string(buf[m[0]:m[1]]) + ">"
				}
				buf = buf[m[1]:]
				select {
				case h.packets <- p:
				default: // nobody reads: heartbeats of a silent client pile up
				}
			}
			if err != nil {
				h.end = time.Now()
				close(h.ended)
				return
			}
		}
	}()
	if p := h.next(t); p != "1::" {
		t.Fatalf("htmlfile first packet %q", p)
	}
	return h
}

// next returns the next packet of the stream.
func (h *htmlfileStream) next(t *testing.T) string {
	t.Helper()
	select {
	case p := <-h.packets:
		return p
	case <-h.ended:
		t.Fatal("htmlfile stream ended")
	case <-time.After(10 * time.Second):
		t.Fatal("no htmlfile packet within 10s")
	}
	return ""
}

// endedWithin waits for the stream's response to end and checks that it
// ended between hbTimeout and hbTimeout+hbLate after since.
func (h *htmlfileStream) endedWithin(t *testing.T, what string, since time.Time) {
	t.Helper()
	select {
	case <-h.ended:
	case <-time.After(hbTimeout + 10*time.Second):
		t.Fatalf("%s: htmlfile stream still open %v after the last sign of life", what, time.Since(since).Round(time.Millisecond))
	}
	took := h.end.Sub(since)
	t.Logf("%s: htmlfile stream ended %v after the last sign of life", what, took.Round(time.Millisecond))
	if took < hbTimeout-hbClock || took > hbTimeout+hbLate {
		t.Fatalf("%s: htmlfile stream ended %v after the last sign of life, want %v to %v", what, took, hbTimeout, hbTimeout+hbLate)
	}
}

// disconnectedWithin checks the session's signals: connect, then
// disconnect with reason heartbeat_timeout written between hbTimeout and
// hbTimeout+hbLate after since (signal times are in milliseconds).
func (c *cluster) disconnectedWithin(t *testing.T, what, sid string, since time.Time) {
	t.Helper()
	sigs := c.signals(sid, 2)
	if got := describe(sigs); !slices.Equal(got, []string{"connect", "disconnect " + string(bus.ReasonHeartbeatTimeout)}) {
		t.Fatalf("%s: signals %q", what, got)
	}
	took := sigs[1].Time.Sub(since)
	if took < hbTimeout-hbClock || took > hbTimeout+hbLate {
		t.Fatalf("%s: disconnect written %v after the last sign of life, want %v to %v", what, took, hbTimeout, hbTimeout+hbLate)
	}
}

// at returns the same cluster for a subtest.
func (c *cluster) at(t *testing.T) *cluster {
	return &cluster{t: t, redis: c.redis, rdb: c.rdb, keys: c.keys}
}

// Every streaming transport ends a client silent for the heartbeat timeout
// (reason heartbeat_timeout), measured from the last sign of life; an
// htmlfile client's heartbeat answers count wherever they are POSTed, here
// to the gateway that does not hold its stream (round-robin balancing).
//
// The cost: gateway a reads a client's last POST from Redis only when its
// stream looks silent there, about once per heartbeat timeout minus
// interval while the answers go to b, and once for each silent client
// before ending it. Gateway b, whose htmlfile client POSTs to b itself,
// reads only once, before ending it; its flashsocket never needs a read.
func TestStreamingHeartbeatTimeout(t *testing.T) {
	c := newCluster(t)
	admin := []string{"-admin-addr", "127.0.0.1:0"}
	a, b := c.gateway("a", append(admin, hbFlags...)...), c.gateway("b", append(admin, hbFlags...)...)
	aAdmin, bAdmin := "http://"+a.logged(adminRE), "http://"+b.logged(adminRE)
	t.Run("clients", func(t *testing.T) { streamingHeartbeatClients(t, c, a, b) })
	if t.Failed() {
		return
	}
	lookups := func(admin, result string) float64 {
		_, m, _ := get(t, admin+"/metrics")
		return max(0, metric(m, `realtime_gateway_heartbeat_lookups_total{result="`+result+`"}`))
	}
	heard, silent, failed := lookups(aAdmin, "heard"), lookups(aAdmin, "silent"), lookups(aAdmin, "unknown")
	t.Logf("gateway a read the last POST of its htmlfile clients from Redis: %v times heard, %v times silent, %v times unknown", heard, silent, failed)
	if heard < 1 || heard > 8 || silent != 2 || failed != 0 {
		t.Fatalf("gateway a's lookups: heard %v (want 1 to 8 in the 8 s of answers through b), silent %v (want 2), unknown %v", heard, silent, failed)
	}
	heard, silent, failed = lookups(bAdmin, "heard"), lookups(bAdmin, "silent"), lookups(bAdmin, "unknown")
	if heard != 0 || silent != 1 || failed != 0 {
		t.Fatalf("gateway b's lookups: heard %v (want 0: the POSTs came to b), silent %v (want 1), unknown %v", heard, silent, failed)
	}
}

func streamingHeartbeatClients(t *testing.T, c *cluster, a, b *proc) {
	t.Run("silent htmlfile", func(t *testing.T) {
		t.Parallel()
		c := c.at(t)
		sid := handshake(t, a)
		opened := time.Now()
		h := openHTMLFile(t, "http://"+a.addr, sid)
		if p := h.next(t); p != "2::" {
			t.Fatalf("packet %q, want a heartbeat", p)
		}
		h.endedWithin(t, "silent", opened)
		c.disconnectedWithin(t, "silent", sid, opened)
	})

	t.Run("htmlfile answering through the other gateway", func(t *testing.T) {
		t.Parallel()
		answeringHTMLFile(t, c.at(t), a, b, 8*time.Second)
	})

	t.Run("htmlfile answering through its own gateway", func(t *testing.T) {
		t.Parallel()
		answeringHTMLFile(t, c.at(t), b, b, 5*time.Second)
	})

	t.Run("silent flashsocket", func(t *testing.T) {
		t.Parallel()
		c := c.at(t)
		sid := handshake(t, b)
		opened := time.Now()
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.addr+"/socket.io/1/flashsocket/"+sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		var end time.Time
		var packets []string
		for {
			_ = ws.SetReadDeadline(time.Now().Add(hbTimeout + 10*time.Second))
			_, m, err := ws.ReadMessage()
			if err != nil {
				end = time.Now()
				break
			}
			packets = append(packets, string(m))
		}
		if len(packets) < 2 || packets[0] != "1::" || packets[1] != "2::" {
			t.Fatalf("flashsocket packets %q", packets)
		}
		if took := end.Sub(opened); took < hbTimeout || took > hbTimeout+hbLate {
			t.Fatalf("flashsocket closed %v after it opened, want %v to %v", took, hbTimeout, hbTimeout+hbLate)
		}
		c.disconnectedWithin(t, "silent flashsocket", sid, opened)
	})
}

// answeringHTMLFile holds an htmlfile stream on holder whose client answers
// every heartbeat by a POST to poster for answerFor, then falls silent.
func answeringHTMLFile(t *testing.T, c *cluster, holder, poster *proc, answerFor time.Duration) {
	sid := handshake(t, holder)
	h := openHTMLFile(t, "http://"+holder.addr, sid)
	answerUntil := time.Now().Add(answerFor)
	var lastAnswer time.Time
	heartbeats := 0
	for time.Now().Before(answerUntil) {
		if p := h.next(t); p != "2::" {
			t.Fatalf("packet %q, want a heartbeat", p)
		}
		heartbeats++
		lastAnswer = time.Now()
		if status, body, _ := post(t, poster.url("/socket.io/1/htmlfile/"+sid+"?t=2"), "text/plain", "2::"); status != 200 || body != "1" {
			t.Fatalf("heartbeat answer POST to %s: %d %q", poster.name, status, body)
		}
	}
	select {
	case <-h.ended:
		t.Fatalf("stream ended although the client answered every heartbeat (%d)", heartbeats)
	default:
	}
	if got := describe(c.signals(sid, 1)); !slices.Equal(got, []string{"connect"}) {
		t.Fatalf("answering client: signals %q", got)
	}
	if want := int(answerFor/hbInterval) - 1; heartbeats < want {
		t.Fatalf("%d heartbeats in %v, want one a second", heartbeats, answerFor)
	}
	// Now it falls silent.
	h.endedWithin(t, "answering, then silent", lastAnswer)
	c.disconnectedWithin(t, "answering, then silent", sid, lastAnswer)
}

// A Redis pause longer than the heartbeat timeout (CLIENT PAUSE: every
// command waits, and fails after the go-redis read timeout of 3 s) does not
// end a healthy htmlfile session whose heartbeat answers go to the other
// gateway: the holder's lookup that Redis failed or held up is taken as
// unknown, not as silence (the answers were held up or refused too), and
// the client gets another heartbeat timeout, which its next answers fill.
func TestHTMLFileHeartbeatTimeoutRedisPause(t *testing.T) {
	// Parallel: a cluster of its own; one htmlfile client answering
	// heartbeats for 13 s across a 6 s pause.
	t.Parallel()
	c := newCluster(t)
	a := c.gateway("a", append([]string{"-admin-addr", "127.0.0.1:0"}, hbFlags...)...)
	b := c.gateway("b", hbFlags...)
	aAdmin := "http://" + a.logged(adminRE)
	sid := handshake(t, a)
	opened := time.Now()
	h := openHTMLFile(t, "http://"+a.addr, sid)
	var posts sync.WaitGroup
	defer posts.Wait()
	answer := func() {
		posts.Add(1)
		go func() { // during the pause a POST waits and may fail (503); the client goes on
			defer posts.Done()
			req, _ := http.NewRequest("POST", b.url("/socket.io/1/htmlfile/"+sid+"?t=2"), strings.NewReader("2::"))
			req.Header.Set("Content-Type", "text/plain")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	var pausedAt time.Time
	const pause = 6 * time.Second
	for time.Since(opened) < 2*time.Second+pause+hbTimeout+2*time.Second {
		if p := h.next(t); p != "2::" {
			t.Fatalf("packet %q, want a heartbeat", p)
		}
		answer()
		if pausedAt.IsZero() && time.Since(opened) > 2*time.Second {
			if err := c.rdb.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
				t.Fatal(err)
			}
			pausedAt = time.Now()
		}
	}
	select {
	case <-h.ended:
		t.Fatalf("the stream ended %v after a Redis pause of %v began", h.end.Sub(pausedAt).Round(time.Millisecond), pause)
	default:
	}
	if got := describe(c.signals(sid, 1)); !slices.Equal(got, []string{"connect"}) {
		t.Fatalf("signals %q", got)
	}
	_, m, _ := get(t, aAdmin+"/metrics")
	unknown := metric(m, `realtime_gateway_heartbeat_lookups_total{result="unknown"}`)
	heard := metric(m, `realtime_gateway_heartbeat_lookups_total{result="heard"}`)
	t.Logf("gateway a's lookups across the pause: %v unknown, %v heard", unknown, heard)
	if unknown < 1 || heard < 1 {
		t.Fatalf("lookups: %v unknown (want at least one during the pause), %v heard (want some after it)", unknown, heard)
	}
}

// The reference ends a silent htmlfile client too, and counts heartbeat
// answers POSTed for it: the expected values above are its behaviour. It
// times out from the heartbeat it sent (interval + timeout after the last
// answer, about 4 s here); we time out from the last sign of life (3 s).
func TestHTMLFileHeartbeatTimeoutReference(t *testing.T) {
	ref := reference(t, "HEARTBEAT_INTERVAL=1", "HEARTBEAT_TIMEOUT=3")
	var wg sync.WaitGroup
	wg.Add(2)
	var silentTook, answeringTook time.Duration
	go func() { // these goroutines report with t.Errorf (never t.Fatal)
		defer wg.Done()
		silentTook = referenceHTMLFile(t, ref, 0)
	}()
	go func() {
		defer wg.Done()
		answeringTook = referenceHTMLFile(t, ref, 6*time.Second)
	}()
	wg.Wait()
	t.Logf("reference: silent htmlfile ended %v after it opened; answering for 6 s, then silent: ended %v after the last answer",
		silentTook.Round(time.Millisecond), answeringTook.Round(time.Millisecond))
	for _, took := range []time.Duration{silentTook, answeringTook} {
		if took < hbTimeout || took > hbTimeout+hbLate {
			t.Errorf("reference ended the htmlfile %v after the last sign of life, want %v to %v", took, hbTimeout, hbTimeout+hbLate)
		}
	}
}

// referenceHTMLFile opens an htmlfile stream on the reference, answers its
// heartbeats by POST for answerFor, then falls silent; it returns how long
// after the last sign of life the stream ended (-1 on a failure, logged).
func referenceHTMLFile(t *testing.T, ref string, answerFor time.Duration) time.Duration {
	fail := func(format string, args ...any) time.Duration {
		t.Errorf(format, args...)
		return -1
	}
	status, body, err := plainGet(ref + "/socket.io/1/?t=1")
	sid, _, ok := strings.Cut(body, ":")
	if err != nil || status != 200 || !ok {
		return fail("reference handshake: %d %q %v", status, body, err)
	}
	last := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ref+"/socket.io/1/htmlfile/"+sid+"?t=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail("reference htmlfile GET: %v", err)
	}
	defer resp.Body.Close()
	until := last.Add(answerFor)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fail("reference htmlfile still open after 30 s")
			}
			return time.Since(last)
		}
		if strings.Contains(string(buf[:n]), `_("2::")`) && time.Now().Before(until) {
			last = time.Now()
			req, _ := http.NewRequest("POST", ref+"/socket.io/1/htmlfile/"+sid+"?t=2", strings.NewReader("2::"))
			req.Header.Set("Content-Type", "text/plain")
			pr, err := client.Do(req)
			if err != nil {
				return fail("reference heartbeat answer: %v", err)
			}
			pr.Body.Close()
		}
	}
}

// plainGet is get without a testing.T (for goroutines).
func plainGet(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String(), nil
}
