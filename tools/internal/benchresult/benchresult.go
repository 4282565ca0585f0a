// Package benchresult defines the summary cmd/siobench prints with -json,
// which cmd/benchrun reads: one type, so the two cannot drift apart.
package benchresult

// Result is the summary of one siobench run.
type Result struct {
	Scenario     string  `json:"scenario"`
	Transport    string  `json:"transport"`
	Clients      int     `json:"clients"`
	Connected    int     `json:"connected"`
	Errors       int64   `json:"errors"`
	Seconds      float64 `json:"seconds"`
	ConnectsPerS float64 `json:"connects_per_s,omitempty"`
	RSSPerConnKB float64 `json:"rss_per_conn_kib,omitempty"`
	Ops          int64   `json:"ops"`
	OpsPerS      float64 `json:"ops_per_s,omitempty"`
	Missing      int64   `json:"missing,omitempty"`
	P50ms        float64 `json:"p50_ms,omitempty"`
	P90ms        float64 `json:"p90_ms,omitempty"`
	P99ms        float64 `json:"p99_ms,omitempty"`
	MaxMs        float64 `json:"max_ms,omitempty"`
	// With -source-ips: how many local addresses the clients used.
	SourceIPs int `json:"source_ips,omitempty"`
	// connect with -hold: how long the clients were held, how many were
	// dropped meanwhile (their connection closed, or the server
	// disconnected them), the heartbeats they received (in all, and the
	// fewest by one client), the server's RSS per connection at the end and
	// its CPU use during the hold (percent of one core).
	HeldSeconds      float64 `json:"held_s,omitempty"`
	Dropped          int64   `json:"dropped,omitempty"`
	Heartbeats       int64   `json:"heartbeats,omitempty"`
	MinHeartbeats    int64   `json:"min_heartbeats,omitempty"`
	RSSPerConnHeldKB float64 `json:"rss_per_conn_held_kib,omitempty"`
	ServerCPUPercent float64 `json:"server_cpu_pct,omitempty"`
}
