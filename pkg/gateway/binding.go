package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"
)

// Session binding (Config.SessionBindingSecret). A Socket.IO 0.9 session id
// is a bearer token: whoever holds it may open a transport on the session
// (a websocket on another gateway takes the session over) or POST to it.
// With a binding secret set, the handshake also sets an HttpOnly cookie
// that only the browser which made the handshake holds, and every
// transport request of the session (websocket, flashsocket, htmlfile,
// polling GET and POST, ?disconnect) must carry it: one without it is
// refused with 403 (reason session_binding, counted in
// realtime_gateway_rejected_total and logged, rate-limited), whatever else
// it holds.
//
// The cookie is BindingCookiePrefix + sid, its value the first 128 bits of
// HMAC-SHA256(secret, sid), URL-safe base64: stateless, so every gateway
// with the same secret checks it without Redis. It is HttpOnly, SameSite
// Lax, Path /socket.io/, Secure when the handshake came over TLS, and lives
// BindingCookieMaxAge (a polling session older than that is refused and its
// client handshakes again).
//
// The official client works with it unchanged in a browser whose page comes
// from the gateways' own origin (the balancer's). It sends credentials on a
// cross-origin handshake but not on its cross-origin polling requests, Node
// clients keep no cookies, and Flash sockets carry no HttpOnly cookie: for
// those, leave binding off.

// BindingCookiePrefix starts the name of a session's binding cookie; the
// session id follows.
const BindingCookiePrefix = "rtb_"

// BindingCookieMaxAge is how long a binding cookie lives.
const BindingCookieMaxAge = 24 * time.Hour

// bindingToken is the binding cookie's value for session sid.
func (g *Gateway) bindingToken(sid string) string {
	mac := hmac.New(sha256.New, g.cfg.SessionBindingSecret)
	mac.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// setBinding sets session sid's binding cookie on the handshake's answer,
// when binding is on.
func (g *Gateway) setBinding(w http.ResponseWriter, r *http.Request, sid string) {
	if len(g.cfg.SessionBindingSecret) == 0 {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: BindingCookiePrefix + sid, Value: g.bindingToken(sid), Path: "/socket.io/",
		MaxAge: int(BindingCookieMaxAge / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil,
	})
}

// bound reports whether request r may act on session sid: binding is off,
// or r carries the session's binding cookie.
func (g *Gateway) bound(r *http.Request, sid string) bool {
	if len(g.cfg.SessionBindingSecret) == 0 {
		return true
	}
	c, err := r.Cookie(BindingCookiePrefix + sid)
	return err == nil && hmac.Equal([]byte(c.Value), []byte(g.bindingToken(sid)))
}
