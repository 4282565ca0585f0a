package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// bodyLogEvery is the least time between two log lines about request
// bodies cut off by Config.BodyTimeout; each is counted.
const bodyLogEvery = 10 * time.Second

// HTTPServer returns the http.Server to serve g with: headers read within
// DefaultHeaderTimeout, keep-alive connections closed after
// Config.IdleTimeout without a request (counted in
// realtime_gateway_idle_connections while they wait). Request bodies are
// bounded by Config.BodyTimeout in ServeHTTP, not by ReadTimeout: a
// server-wide ReadTimeout would cancel a parked poll's context once it
// expired. There is no WriteTimeout: it would cut parked polls
// (Config.PollingDuration) and htmlfile streams; each write to a client
// has its own deadline instead (writeWithin; websockets are hijacked, and
// theirs is the websocket library's). The caller sets Addr (or calls
// Serve with a listener).
func (g *Gateway) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           g,
		ReadHeaderTimeout: DefaultHeaderTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		ConnState:         g.connState,
	}
}

// connState keeps realtime_gateway_idle_connections: a connection enters
// the count when it becomes idle and leaves it with its next state.
func (g *Gateway) connState(c net.Conn, state http.ConnState) {
	if state == http.StateIdle {
		g.idleConns.Store(c, struct{}{})
		g.metrics.IdleConnections.Inc()
		return
	}
	if _, was := g.idleConns.LoadAndDelete(c); was {
		g.metrics.IdleConnections.Dec()
	}
}

// boundBody gives r's body Config.BodyTimeout to arrive: a read deadline
// on the connection, lifted once the body has been read (so that the
// handler's own wait, e.g. for Redis, is not cut). A request without a
// body, or a ResponseWriter without deadlines (a recorder), is left alone.
func (g *Gateway) boundBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(g.cfg.BodyTimeout)) != nil {
		return
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, g: g, rc: rc, remote: r.RemoteAddr}
}

// deadlineBody is a request body read under a deadline (boundBody).
type deadlineBody struct {
	io.ReadCloser
	g      *Gateway
	rc     *http.ResponseController
	remote string
	done   bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil || b.done {
		return n, err
	}
	b.done = true
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.g.metrics.BodyTimeouts.Inc()
		if ok, skipped := b.g.bodyLog.Allow(time.Now(), bodyLogEvery); ok {
			b.g.log.Info("request body too slow: connection closed", "timeout", b.g.cfg.BodyTimeout, "remote", b.remote, "unlogged", skipped)
		}
		return n, err
	}
	_ = b.rc.SetReadDeadline(time.Time{})
	return n, err
}

// writeWithin writes b to w and flushes it, within writeTimeout: a client
// that stops reading (its TCP window full) fails the write, which closes
// its connection, instead of holding the handler, its connection and the
// bytes queued for good. The deadline is lifted after: the connection may
// serve later requests (keep-alive), and a parked poll waits longer than
// writeTimeout before it writes. A write that timed out is counted in
// realtime_gateway_write_timeouts_total and logged (at most every
// bodyLogEvery).
func (g *Gateway) writeWithin(w http.ResponseWriter, transport string, b []byte) error {
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	_, err := w.Write(b)
	if err == nil {
		err = rc.Flush()
	}
	_ = rc.SetWriteDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		g.metrics.WriteTimeouts.WithLabelValues(transport).Inc()
		if ok, skipped := g.writeLog.Allow(time.Now(), bodyLogEvery); ok {
			g.log.Info("client did not take a write: connection closed", "transport", transport, "timeout", writeTimeout, "bytes", len(b), "unlogged", skipped)
		}
	}
	return err
}
