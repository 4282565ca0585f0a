package worker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A handler that runs past HandlerTimeout sees its context end, is logged
// and counted as an overrun, and what it did is still committed, in order.
func TestHandlerOverrun(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(nil)
	w := New(e.rdb, Config{Keys: e.keys, LeaseTTL: 600 * time.Millisecond, HandlerTimeout: 50 * time.Millisecond, Metrics: m})
	ctxErr := make(chan error, 1)
	ns := w.Namespace("")
	ns.OnEvent("slow", func(ctx context.Context, s *Socket, ev *Event) error {
		time.Sleep(150 * time.Millisecond) // ignores ctx, as a careless handler would
		ctxErr <- ctx.Err()
		return ev.Ack("slow")
	})
	ns.OnEvent("fast", func(ctx context.Context, s *Socket, ev *Event) error {
		return ev.Ack("fast")
	})
	stop := e.run(w)
	defer stop()
	sid := e.session()
	e.event(sid, "slow", "[]", 1)
	e.event(sid, "fast", "[]", 2)
	waitFor(t, "both acks", func() bool { return len(e.mailbox(sid)) >= 2 })
	if got, want := e.mailbox(sid), []string{`6:::1+["slow"]`, `6:::2+["fast"]`}; !slices.Equal(got, want) {
		t.Fatalf("mailbox = %q, want %q", got, want)
	}
	if err := <-ctxErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the slow handler's context: %v, want deadline exceeded", err)
	}
	if n := value(m.Overruns); n != 1 {
		t.Errorf("overruns = %v, want 1", n)
	}
	if n := value(m.Signals.WithLabelValues("event", "ok")); n != 2 {
		t.Errorf("events ok = %v, want 2", n)
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
