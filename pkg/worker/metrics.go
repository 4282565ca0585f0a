package worker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the worker's Prometheus collectors.
type Metrics struct {
	Signals        *prometheus.CounterVec   // kind, result (ok, error, rejected, unhandled, ignored, not_served)
	HandlerSeconds *prometheus.HistogramVec // kind, event (registered names, else "other"; "" for other kinds)
	Overruns       prometheus.Counter
	DeadLetters    prometheus.Counter
	Reclaimed      prometheus.Counter
	Reread         prometheus.Counter
	Partitions     prometheus.Gauge
	Pending        *prometheus.GaugeVec // partition
	Lag            *prometheus.GaugeVec // partition
	AcksRouted     prometheus.Counter
	AckTimeouts    prometheus.Counter
	BacklogTrimmed *prometheus.CounterVec // group
	GroupLag       *prometheus.GaugeVec   // group, partition
	RoomsRefused   *prometheus.CounterVec // reason (too_many_rooms, room_name_too_long)
	Disconnects    *prometheus.CounterVec // reason: disconnect signals committed
	Handovers      prometheus.Counter
	OutboxDrained  prometheus.Counter
	OutboxWaiting  *prometheus.GaugeVec // partition
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_worker_signals_total", Help: "Signals handled by kind and result."}, []string{"kind", "result"}),
		HandlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "realtime_worker_handler_seconds", Help: "Handler duration by signal kind and, for events, name (names with an OnEvent handler; others are \"other\").",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"kind", "event"}),
		Overruns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_handler_overruns_total", Help: "Handlers that ran past their deadline."}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_dead_letters_total", Help: "Signals moved to a dead-letter stream."}),
		Reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_reclaimed_total", Help: "Pending signals taken over from earlier owners."}),
		Reread: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_reread_total", Help: "Signals left pending on this worker by a failed read or commit, read again before newer ones."}),
		Partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_worker_partitions_owned", Help: "Partitions this worker owns."}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_worker_stream_pending", Help: "Entries delivered but not acknowledged, per partition."}, []string{"partition"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_worker_stream_lag", Help: "Entries not yet delivered to the group, per partition."}, []string{"partition"}),
		AcksRouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_acks_routed_total", Help: "Client answers to server emits delivered to callbacks."}),
		AckTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_ack_timeouts_total", Help: "Server emits whose client ack did not come in time."}),
		BacklogTrimmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_worker_backlog_trimmed_total", Help: "Signals trimmed from partition streams before a consumer group (an app) read them: its workers were stopped or too slow for the backlog bound, by group."}, []string{"group"}),
		RoomsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_worker_rooms_refused_total", Help: "Socket.Join calls refused by the per-session bounds, by reason (too_many_rooms, room_name_too_long)."}, []string{"reason"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_worker_disconnects_total", Help: "Disconnect signals (a namespace or a session ended) this worker committed, by reason (client, timeout, overflow, ...: pkg/bus Reason*). Every app sees every disconnect: aggregate by group."}, []string{"reason"}),
		GroupLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_worker_group_lag", Help: "Signals of a partition waiting to be delivered to each app's consumer group, every group's, as this worker saw them when it last trimmed a partition it owns (every 10 s): an app whose workers are all stopped shows here. Workers of several apps report the same partition: aggregate with max by (group, partition), then sum by (group)."}, []string{"group", "partition"}),
		Handovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_partition_handovers_total", Help: "Partitions this worker handed over to a worker of its app that serves a signal this one does not (a rolling deploy), leaving the signal pending for it."}),
		OutboxDrained: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_worker_outbox_drained_total", Help: "Outbox entries (effects a commit made on other partitions) applied by the periodic drain of the partitions this worker owns, not by the commit that wrote them: its worker stopped, or Redis failed, in between."}),
		OutboxWaiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_worker_outbox_waiting", Help: "Outbox entries the last periodic drain of a partition this worker owns found when it could not apply them all (at most 1000 counted; 0 when it applied them all): effects waiting for another partition's Redis primary, per partition."}, []string{"partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.Signals, m.HandlerSeconds, m.Overruns, m.DeadLetters, m.Reclaimed, m.Reread, m.Partitions,
			m.Pending, m.Lag, m.AcksRouted, m.AckTimeouts, m.BacklogTrimmed, m.RoomsRefused, m.Disconnects, m.GroupLag, m.Handovers, m.OutboxDrained, m.OutboxWaiting)
	}
	return m
}
