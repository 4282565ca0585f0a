// Package admin serves a process's admin endpoints: Prometheus metrics,
// liveness and readiness (and, optionally, the Go profiler). The gateway
// and the worker commands use it, and a worker of your own can serve it
// with worker.Worker.AdminHandler.
package admin

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyTimeout bounds one /readyz check.
const ReadyTimeout = 2 * time.Second

// Handler serves:
//
//   - /metrics: reg's metrics (Prometheus text format);
//   - /healthz: 200 "ok" while the process serves HTTP;
//   - /readyz: 200 "ready" when ready returns nil within ReadyTimeout,
//     else 503 "not ready: <error>"; either followed by notes() when notes
//     is not nil (lines an operator should see, the process still ready);
//   - /debug/pprof/ when withPprof (never on a port clients reach).
func Handler(reg *prometheus.Registry, ready func(context.Context) error, notes func() string, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		note := ""
		if notes != nil {
			note = notes()
		}
		if err := ready(ctx); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n" + note))
			return
		}
		_, _ = w.Write([]byte("ready\n" + note))
	})
	return mux
}
