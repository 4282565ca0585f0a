package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// serveHTMLFile holds an htmlfile stream: a chunked HTML page that receives
// each payload as a <script> call. Its POSTs may reach any gateway.
func (g *Gateway) serveHTMLFile(w http.ResponseWriter, r *http.Request, sid string) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		g.reject(w, r, http.StatusInternalServerError, "no_flusher", "streaming unsupported")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=UTF-8")
	h.Set("Connection", "keep-alive")
	h.Set("Transfer-Encoding", "chunked")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	s := g.newStream(sid, TransportHTMLFile)
	first, err := g.openStream(ctx, s)
	cancel()
	hw := htmlfileWriter{w: w, f: flusher}
	if err != nil {
		reason, pk := "open_failed", errorPacket
		switch {
		case errors.Is(err, session.ErrUnknownSession):
			reason = "unknown_sid"
		case errors.Is(err, session.ErrWrongTransport):
			reason = "wrong_transport"
			pk = string(protocol.Encode(protocol.ErrorPacket("", protocol.ReasonTransportNotSupported, -1)))
		default:
			g.metrics.RedisErrors.WithLabelValues("open").Inc()
		}
		g.rejected(reason, "transport", TransportHTMLFile, "sid", sid, "err", err)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(protocol.HTMLFileHeader())
		_ = hw.write([]string{pk})
		return
	}
	g.metrics.Connections.WithLabelValues(TransportHTMLFile).Inc()
	defer g.metrics.Connections.WithLabelValues(TransportHTMLFile).Dec()
	g.held.Add(1)
	defer g.held.Add(-1)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(protocol.HTMLFileHeader())
	flusher.Flush()
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-r.Context().Done():
			s.closeLocal(bus.ReasonTransportClose)
		case <-s.quit:
		}
	}()
	s.writeLoop(first, hw) // in the handler goroutine: the ResponseWriter is not shared
	s.closeLocal(bus.ReasonTransportClose)
	<-done
	s.finish()
}

type htmlfileWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (h htmlfileWriter) write(packets []string) error {
	bufs := make([][]byte, len(packets))
	for i, p := range packets {
		bufs[i] = []byte(p)
	}
	if _, err := h.w.Write(protocol.AppendHTMLFileScript(nil, protocol.AppendPayload(nil, bufs...))); err != nil {
		return err
	}
	h.f.Flush()
	return nil
}
