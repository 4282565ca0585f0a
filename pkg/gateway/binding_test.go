package gateway

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// Session binding (issue 16 item 6): with a secret set, the handshake sets
// the session's HttpOnly cookie; every transport request of the session
// without it (a leaked sid alone) is refused with 403, counted and logged,
// and the session goes on; with it, every transport works.
func TestSessionBinding(t *testing.T) {
	var logs logBuffer
	transports := []string{TransportWebSocket, TransportFlashSocket, TransportHTMLFile, TransportXHRPolling, TransportJSONPPolling}
	cfg := Config{Transports: transports, SessionBindingSecret: []byte("0123456789abcdef0123456789abcdef"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	tg := newLiveGateway(t, cfg)
	// Another gateway of the cluster, with the same secret, checks it too.
	cfg.Node = "gw-other"
	other := newLiveGatewayOn(t, tg.red, cfg)

	code, body, h := tg.do(http.MethodGet, "/socket.io/1/", "", nil)
	sid, _, _ := strings.Cut(body, ":")
	if code != http.StatusOK || sid == "" {
		t.Fatalf("handshake: %d %q", code, body)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == BindingCookiePrefix+sid {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.Path != "/socket.io/" || cookie.SameSite != http.SameSiteLaxMode || cookie.MaxAge <= 0 {
		t.Fatalf("binding cookie %+v, want HttpOnly, SameSite=Lax, Path=/socket.io/, a Max-Age", cookie)
	}
	withCookie := http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}
	wrong := http.Header{"Cookie": {cookie.Name + "=" + strings.Repeat("A", len(cookie.Value))}}

	refused := tg.rejections(rejectSessionBinding) + other.rejections(rejectSessionBinding)
	// Without the cookie, or with a wrong one: every transport, and
	// ?disconnect, is refused, on either gateway.
	for _, g := range []*liveGateway{tg, other} {
		for _, hdr := range []http.Header{nil, wrong} {
			for _, req := range [][2]string{
				{http.MethodGet, "/socket.io/1/xhr-polling/" + sid + "?t=1"},
				{http.MethodPost, "/socket.io/1/xhr-polling/" + sid + "?t=2"},
				{http.MethodGet, "/socket.io/1/jsonp-polling/" + sid + "?t=3&i=0"},
				{http.MethodGet, "/socket.io/1/htmlfile/" + sid + "?t=4"},
				{http.MethodGet, "/socket.io/1//" + sid + "/?disconnect=1"},
			} {
				if code, _, _ := g.do(req[0], req[1], "3:::hijack", hdr); code != http.StatusForbidden {
					t.Errorf("%s %s (cookie %v) on %s: %d, want 403", req[0], req[1], hdr != nil, g.g.cfg.Node, code)
				}
			}
			for _, tr := range []string{TransportWebSocket, TransportFlashSocket} {
				ws, resp, err := g.dialWS(tr, sid, hdr)
				if err == nil {
					ws.Close()
					t.Errorf("%s without the cookie on %s: opened", tr, g.g.cfg.Node)
				} else if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s without the cookie on %s: %v, want 403", tr, g.g.cfg.Node, err)
				}
			}
		}
	}
	if got := tg.rejections(rejectSessionBinding) + other.rejections(rejectSessionBinding) - refused; got != 28 {
		t.Errorf("session_binding counted %v times, want 28", got)
	}
	if len(logs.lines("reason=session_binding")) == 0 {
		t.Error("the refusals were not logged")
	}
	if lines := logs.lines(sid); len(lines) > 0 {
		t.Errorf("a sid logged in full:\n%s", strings.Join(lines, "\n"))
	}
	// Nothing the refused requests carried reached the session.
	if sigs := tg.signals(sid); len(sigs) != 0 {
		t.Errorf("signals after refused requests: %q", sigs)
	}

	// With the cookie the session works, on either gateway: a websocket
	// opens and sends, and a polling session polls and POSTs.
	ws, _, err := other.dialWS(TransportWebSocket, sid, withCookie)
	if err != nil {
		t.Fatalf("websocket with the cookie: %v", err)
	}
	expectFrame(t, ws, "1::")
	if err := ws.WriteMessage(websocket.TextMessage, []byte("3:::mine")); err != nil {
		t.Fatal(err)
	}
	tg.waitSignals(sid, "connect", "message mine")
	ws.Close()

	_, body, h = tg.do(http.MethodGet, "/socket.io/1/", "", nil)
	psid, _, _ := strings.Cut(body, ":")
	var pc http.Header
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == BindingCookiePrefix+psid {
			pc = http.Header{"Cookie": {c.Name + "=" + c.Value}}
		}
	}
	if code, body, _ := other.do(http.MethodGet, "/socket.io/1/xhr-polling/"+psid+"?t=1", "", pc); code != http.StatusOK || body != "1::" {
		t.Fatalf("first poll with the cookie: %d %q", code, body)
	}
	if code, _, _ := tg.do(http.MethodPost, "/socket.io/1/xhr-polling/"+psid+"?t=2", "3:::polled", pc); code != http.StatusOK {
		t.Fatalf("POST with the cookie: %d", code)
	}
	tg.waitSignals(psid, "connect", "message polled")
	// Another session's cookie does not open this one.
	if code, _, _ := tg.do(http.MethodGet, "/socket.io/1/xhr-polling/"+sid+"?t=5", "", pc); code != http.StatusForbidden {
		t.Errorf("poll with another session's cookie: %d, want 403", code)
	}
}
