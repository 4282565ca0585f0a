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
	s := g.newStreamConn(sid, TransportHTMLFile, nil)
	first, err := g.openConn(ctx, s)
	cancel()
	hw := htmlfileWriter{w: w, f: flusher}
	if err != nil {
		pk := g.openFailed(TransportHTMLFile, sid, err)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(protocol.HTMLFileHeader())
		if pk != "" {
			_ = hw.write([]string{pk})
		}
		return
	}
	g.metrics.Connections.WithLabelValues(TransportHTMLFile).Inc()
	defer g.metrics.Connections.WithLabelValues(TransportHTMLFile).Dec()
	g.held.Add(1)
	defer g.held.Add(-1)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(protocol.HTMLFileHeader())
	flusher.Flush()
	s.lastRead.Store(time.Now().UnixNano()) // the open is the first sign of life
	s.start(first)
	g.heartbeats.add(s, g.cfg.HeartbeatInterval)
	// The handler goroutine owns the writes: the ResponseWriter is not shared.
	broken := false
	for {
		select {
		case <-s.wake:
		case <-r.Context().Done():
			s.closeLocal(bus.ReasonTransportClose)
		}
		b, ok := s.take()
		if !ok {
			continue
		}
		if !broken && len(b.packets) > 0 {
			g.repairOut(b.packets, TransportHTMLFile, sid)
			if err := hw.write(b.packets); err != nil {
				broken = true
				s.closeLocal(bus.ReasonTransportClose)
			} else {
				g.metrics.packetsOut(b.packets)
				b.routed.observe(g)
			}
		}
		if b.final {
			break
		}
	}
	s.finish()
}

type htmlfileWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

// write sends each packet in its own script element, as the reference does,
// in one chunk: the bytes do not depend on how packets happened to batch.
func (h htmlfileWriter) write(packets []string) error {
	var buf []byte
	for _, p := range packets {
		buf = protocol.AppendHTMLFileScript(buf, []byte(p))
	}
	if _, err := h.w.Write(buf); err != nil {
		return err
	}
	h.f.Flush()
	return nil
}
