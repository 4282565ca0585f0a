package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/realtime/realtime/pkg/protocol"
)

// namespaceMemberships counts the entries of namespaces (not rooms) in the
// partitions' memberships (<P>{p}:members, bus.MemberEntry:
// "<n>:<ns>:<sid>" for a namespace, where the n bytes after "<n>:" end at
// their first ':').
func (tg *liveGateway) namespaceMemberships() int {
	tg.t.Helper()
	n := 0
	for p := range tg.keys.Partitions() {
		entries, err := tg.rdb.ZRange(context.Background(), tg.keys.Members(p), 0, -1).Result()
		if err != nil {
			tg.t.Fatal(err)
		}
		for _, e := range entries {
			size, rest, _ := strings.Cut(e, ":")
			l, err := strconv.Atoi(size)
			if err != nil || l > len(rest) {
				tg.t.Fatalf("membership entry %q", e)
			}
			if rm := rest[:l]; strings.IndexByte(rm, ':') == len(rm)-1 {
				n++
			}
		}
	}
	return n
}

// connectPayload is a POST payload of n connect packets, /<prefix>0 on.
func connectPayload(prefix string, from, n int) string {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = []byte(fmt.Sprintf("1::/%s%d", prefix, from+i))
	}
	return string(protocol.AppendPayload(nil, bufs...))
}

// Unbounded per-session state (issue 16 item 3), namespaces: a websocket
// session and a polling session each try 10,000 namespaces; each stays at
// Config.MaxNamespaces (plus the default one) in Redis, the namespace sets
// in Redis do not grow past the bound, a refused connect is answered
// 7::/ns:2 on both transports, and is counted; a well-behaved client in
// the same run connects its namespace and is heard.
func TestNamespaceBound(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	max := tg.g.cfg.MaxNamespaces
	if max != DefaultMaxNamespaces {
		t.Fatalf("MaxNamespaces %d, want the default %d", max, DefaultMaxNamespaces)
	}
	refused := tg.rejections(rejectTooManyNamespaces)

	// Websocket: the first max connects are echoed, the next refused with
	// 7::/ns:2; the flood ends with the connection (MaxBadPackets). The
	// flood goes after those answers are read: an accepted connect is
	// echoed once committed, and a connection closed for bad input drops
	// what it had not written yet.
	wsid, ws := tg.openWS()
	for i := 0; i <= max; i++ {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("1::/w%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i <= max; i++ {
		got, err := readFrame(t, ws)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := fmt.Sprintf("1::/w%d", i)
		if i == max {
			want = fmt.Sprintf("7::/w%d:2", i)
		}
		if got != want {
			t.Fatalf("frame %d: %q, want %q", i, got, want)
		}
	}
	for i := max + 1; i < 10000; i++ {
		if ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("1::/w%d", i))) != nil {
			break
		}
	}
	for {
		_, err := readFrame(t, ws)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the flood of refused connects did not end the connection")
		}
		if err != nil {
			break // closed: MaxBadPackets refusals in a row
		}
	}
	// The connect signals are the record of what was committed (the
	// session's namespace set goes when the flood's disconnect ends it).
	connects := func() int {
		n := 0
		for _, s := range tg.signals(wsid) {
			if strings.HasPrefix(s, "connect /w") {
				n++
			}
		}
		return n
	}
	waitUntil(t, "the websocket session's namespace connects committed", func() bool { return connects() >= max })
	if n := connects(); n != max {
		t.Fatalf("%d namespace connects committed for the websocket session, want %d", n, max)
	}

	// Polling: one POST of 10,000 connects, then POSTs racing each other.
	psid := tg.openPolling()
	if code, body := tg.post("/socket.io/1/xhr-polling/"+psid+"?t=2", connectPayload("p", 0, 10000)); code != http.StatusOK || body != "1" {
		t.Fatalf("POST: %d %q", code, body)
	}
	if got := len(tg.namespaces(psid)); got != max+1 {
		t.Fatalf("polling session in %d namespaces, want %d (the default one and %d)", got, max+1, max)
	}
	mb := tg.mailbox(psid)
	if len(mb) > 0 && mb[0] == "1::" {
		mb = mb[1:] // the first poll's answer, kept until the next poll confirms it
	}
	if len(mb) != max+DefaultMaxBadPackets || mb[max-1] != fmt.Sprintf("1::/p%d", max-1) || mb[max] != fmt.Sprintf("7::/p%d:2", max) {
		t.Fatalf("mailbox: %d packets (%q ... %q), want %d echoes then %d refusals (7::/p%d:2 first)",
			len(mb), mb[:min(len(mb), 2)], mb[max-1:min(len(mb), max+1)], max, DefaultMaxBadPackets, max)
	}
	rsid := tg.openPolling()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/socket.io/1/xhr-polling/%s?t=r%d", tg.srv.URL, rsid, i),
				strings.NewReader(connectPayload(fmt.Sprintf("r%d-", i), 0, 40)))
			if resp, err := tg.srv.Client().Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if got := len(tg.namespaces(rsid)); got > max+1 {
		t.Fatalf("racing POSTs put a session in %d namespaces, want at most %d", got, max+1)
	}

	// A well-behaved client beside them.
	good := tg.openPolling()
	if code, body := tg.post("/socket.io/1/xhr-polling/"+good+"?t=2", "1::/chat"); code != 200 || body != "1" {
		t.Fatalf("good POST: %d %q", code, body)
	}
	if code, body := tg.post("/socket.io/1/xhr-polling/"+good+"?t=3", `5::/chat:{"name":"hi"}`); code != 200 || body != "1" {
		t.Fatalf("good event: %d %q", code, body)
	}
	tg.waitSignals(good, "connect /chat", "event /chat hi")

	// Three sessions at the bound (and the default namespace) and one in
	// /chat and the default one: the namespace memberships in Redis.
	if got, most := tg.namespaceMemberships(), 3*(max+1)+2; got > most || got < 2 {
		t.Errorf("%d namespace memberships in Redis, want 2 to %d", got, most)
	}
	if got := tg.rejections(rejectTooManyNamespaces) - refused; got < float64(10000-max) {
		t.Errorf("too_many_namespaces counted %v times, want at least %d", got, 10000-max)
	}
}

// Rejected packets in a polling POST are answered as on a websocket
// (answerRejected), through the mailbox and in order: an error packet on
// the packet's endpoint and, for an acked packet, its ack, so no callback
// waits forever; at most MaxBadPackets answers per POST. The POST itself
// is answered 1 and the good packets among them go on.
func TestPostRejectedAnswered(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	sid := tg.openPolling()
	body := string(protocol.AppendPayload(nil,
		[]byte("x"),
		[]byte(`5:7+:/nope:{"name":"a"}`),
		[]byte("3:8:/nope:hi"),
		[]byte("3:::ok"),
		[]byte("5:9+::{bad"),
	))
	if code, b := tg.post("/socket.io/1/xhr-polling/"+sid+"?t=2", body); code != 200 || b != "1" {
		t.Fatalf("POST: %d %q", code, b)
	}
	want := []string{"1::", "7::",
		"7::/nope", `6::/nope:7+[{"error":"namespace_not_connected"}]`,
		"7::/nope", "6::/nope:8",
		"7::", `6:::9+[{"error":"bad_event"}]`}
	if got := tg.mailbox(sid); !slices.Equal(got, want) {
		t.Fatalf("mailbox %q, want %q", got, want)
	}
	tg.waitSignals(sid, "message ok")

	// A body of garbage: MaxBadPackets answers, not one per packet.
	sid = tg.openPolling()
	bufs := make([][]byte, 3*DefaultMaxBadPackets)
	for i := range bufs {
		bufs[i] = []byte("x")
	}
	if code, b := tg.post("/socket.io/1/xhr-polling/"+sid+"?t=2", string(protocol.AppendPayload(nil, bufs...))); code != 200 || b != "1" {
		t.Fatalf("garbage POST: %d %q", code, b)
	}
	if got := len(tg.mailbox(sid)); got != 1+DefaultMaxBadPackets {
		t.Fatalf("mailbox holds %d packets after a garbage POST, want the first poll's and %d answers", got, DefaultMaxBadPackets)
	}
}
