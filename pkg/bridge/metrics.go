package bridge

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the bridge's Prometheus collectors.
type Metrics struct {
	// Requests counts requests by status: the HTTP status code, "error"
	// (no answer: connection refused, reset, …) or "timeout".
	Requests *prometheus.CounterVec
	// RequestSeconds is the time from sending a request to reading its
	// answer, whatever the status.
	RequestSeconds prometheus.Histogram
	// Signals counts signals by type and result: ok, rejected, error (the
	// app answered "error", or an answer that cannot be applied), invalid
	// (not sent: not JSON), ignored.
	Signals *prometheus.CounterVec
	// Retries counts signals sent again after a failed attempt.
	Retries prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_bridge_requests_total", Help: "Requests to the app by status (HTTP code, error or timeout)."}, []string{"status"}),
		RequestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "realtime_bridge_request_duration_seconds", Help: "Time from sending a request to the app to reading its answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_bridge_signals_total", Help: "Signals answered by the app, by type and result (ok, rejected, error, invalid, ignored)."}, []string{"type", "result"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_bridge_retries_total", Help: "Signals sent to the app again after a failed attempt."}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.RequestSeconds, m.Signals, m.Retries)
	}
	return m
}
