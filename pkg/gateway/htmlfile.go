package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
)

// serveHTMLFile holds an htmlfile stream: a chunked HTML page that receives
// each payload as a <script> call. Its POSTs may reach any gateway; they
// are its client's signs of life (the heartbeat timeout, heartbeat.go).
//
// The stream is a streamConn on an htmlfileConn, the same seam as a
// websocket's: the connection's writer writes to the ResponseWriter, and
// the handler only waits for the end (the ResponseWriter may be used until
// the handler returns, by one goroutine at a time).
func (g *Gateway) serveHTMLFile(w http.ResponseWriter, r *http.Request, sid string) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		g.reject(w, r, http.StatusInternalServerError, rejectNoFlusher, "streaming unsupported")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=UTF-8")
	h.Set("Connection", "keep-alive")
	h.Set("Transfer-Encoding", "chunked")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	hc := &htmlfileConn{g: g, w: w}
	s := g.newStreamConn(sid, TransportHTMLFile, hc, false)
	first, err := g.openConn(ctx, s)
	cancel()
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(protocol.HTMLFileHeader())
	if err != nil {
		if pk := g.openFailed(TransportHTMLFile, sid, err); pk != "" {
			_ = hc.Write([]string{pk})
		}
		return
	}
	flusher.Flush()
	g.holdConn(s, first)
	select {
	case <-s.finished:
	case <-r.Context().Done():
		s.closeLocal(bus.ReasonTransportClose)
		<-s.finished
	}
}

// htmlfileConn is an htmlfile stream's conn: each packet is written in its
// own script element, as the reference does. A ResponseWriter's write may
// block, so TryWrite writes nothing and leaves the packets to Flush, on a
// writer goroutine. A write has writeTimeout (Gateway.writeWithin): a
// client that stops reading fails it, which closes the stream; a client
// gone away ends the request's context, which closes it too.
type htmlfileConn struct {
	g    *Gateway
	w    http.ResponseWriter
	kept []string // what TryWrite left to Flush
	err  error    // the first failed write
}

// TryWrite implements conn: it keeps packets for Flush.
func (h *htmlfileConn) TryWrite(packets []string) (bool, error) {
	if h.err != nil {
		return false, h.err
	}
	h.kept = packets
	return false, nil
}

// Flush implements conn.
func (h *htmlfileConn) Flush() error {
	p := h.kept
	h.kept = nil
	return h.Write(p)
}

// Write implements conn: the packets in one chunk, so the bytes do not
// depend on how packets happened to batch, then flushed.
func (h *htmlfileConn) Write(packets []string) error {
	if h.err != nil || len(packets) == 0 {
		return h.err
	}
	var buf []byte
	for _, p := range packets {
		buf = protocol.AppendHTMLFileScript(buf, []byte(p))
	}
	if err := h.g.writeWithin(h.w, TransportHTMLFile, buf); err != nil {
		h.err = err
		return err
	}
	return nil
}

// Close implements conn: nothing to write; the handler's return ends the
// response.
func (h *htmlfileConn) Close() error { return nil }
