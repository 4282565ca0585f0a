package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realtime/realtime/pkg/bus"
)

// Metrics are the gateway's Prometheus collectors. Label values are bounded
// sets (transports, packet types, reasons); never session ids.
type Metrics struct {
	Handshakes     *prometheus.CounterVec   // result
	Rejected       *prometheus.CounterVec   // reason
	Connections    *prometheus.GaugeVec     // transport: streaming connections held and polls parked
	PacketsIn      *prometheus.CounterVec   // type
	PacketsOut     *prometheus.CounterVec   // type
	BytesIn        *prometheus.CounterVec   // packet bytes received, by type
	BytesOut       *prometheus.CounterVec   // packet bytes written, by type
	RedisRTT       prometheus.Histogram     // a PING, timed every liveness period
	Delivery       *prometheus.HistogramVec // route (direct, broadcast, mailbox): Redis script to the client write
	Sessions       *prometheus.GaugeVec     // state (handshaken, polling, streaming): sessions in the whole cluster
	Disconnects    *prometheus.CounterVec   // reason, for disconnects this gateway decided
	PublishSeconds prometheus.Histogram     // one signal batch round trip
	RedisErrors    *prometheus.CounterVec   // op
	QueueOverflows prometheus.Counter       // streaming send queue overflows
	MailboxDrain   prometheus.Histogram     // packets per poll answer
	MailboxDepth   prometheus.Histogram     // packets in the mailbox when a poll answer is taken from it
	RouteMessages  *prometheus.CounterVec   // op
	InvalidUTF8    *prometheus.CounterVec   // direction (in: from clients, out: to clients)

	// Handshakes held by admission control (waiting for the handshake rate,
	// or retrying the session store): how many now, and how long each waited.
	HandshakesWaiting prometheus.Gauge
	HandshakeWait     prometheus.Histogram

	// HandshakeHeadersDropped counts allow-listed headers not kept with a
	// session because its handshake data would have exceeded
	// Config.MaxHandshakeBytes.
	HandshakeHeadersDropped prometheus.Counter

	// QueueByteOverflows counts the overflows (also in QueueOverflows) where
	// the bytes held, not the packets queued, were over the bound.
	QueueByteOverflows prometheus.Counter

	// BodyTimeouts counts request bodies cut off by Config.BodyTimeout;
	// IdleConnections is the keep-alive connections waiting for a request
	// now (closed after Config.IdleTimeout), when served by
	// Gateway.HTTPServer.
	BodyTimeouts    prometheus.Counter
	IdleConnections prometheus.Gauge
	// WriteTimeouts counts, by transport, poll answers and htmlfile writes
	// a client did not take within the write timeout (it stopped reading):
	// their connection was closed.
	WriteTimeouts *prometheus.CounterVec

	HeartbeatLookups *prometheus.CounterVec // result (heard, silent, unknown): reads of an htmlfile client's last POST

	StreamsOrphaned prometheus.Counter     // streaming connections closed because their session record was gone from Redis
	PollsOrphaned   *prometheus.CounterVec // found_by (post, check): parked polls answered 7:::1+0 because their session record was gone from Redis

	// The route stream (docs/redis.md): gaps found, by reason; reads that
	// failed (once per outage) and resumed.
	RouteGaps           *prometheus.CounterVec
	CommitRollbacks     *prometheus.CounterVec // complete (true, false): Redis lost signal batches it had acknowledged to this gateway
	RouteStreamFailures prometheus.Counter
	RouteStreamResumes  prometheus.Counter
	CommitFailures      prometheus.Counter // websocket sessions ended because a signal they sent was not committed
	PostsRetried        prometheus.Counter // POSTs found to be retries of a POST already committed: nothing applied again

	Ready            prometheus.Gauge       // 1 when the last readiness check passed, else 0
	ReadinessChanges *prometheus.CounterVec // to (ready, unready): changes of the readiness check's result

	// Looked up once, as they are used for every packet: the counters of
	// each packet type (typeNames, then "unknown"), Delivery by route
	// (routeNames), and Rejected by reason (every rejectReason but
	// notRejected, exported at 0 before the first).
	byType   [len(typeNames) + 1]packetCounters
	delivery [len(routeNames)]prometheus.Observer
	byReason [numRejectReasons]prometheus.Counter
}

type packetCounters struct{ packetsIn, bytesIn, packetsOut, bytesOut prometheus.Counter }

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_handshakes_total", Help: "Handshakes by result."}, []string{"result"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_rejected_total", Help: "Rejected requests and packets by reason."}, []string{"reason"}),
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_gateway_connections", Help: "Open streaming connections and parked polls by transport."}, []string{"transport"}),
		PacketsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_packets_in_total", Help: "Packets received from clients by type."}, []string{"type"}),
		PacketsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_packets_out_total", Help: "Packets written to clients by type."}, []string{"type"}),
		BytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_packet_bytes_in_total", Help: "Bytes of packets received from clients by type."}, []string{"type"}),
		BytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_packet_bytes_out_total", Help: "Bytes of packets written to clients by type (before framing)."}, []string{"type"}),
		Delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "realtime_gateway_delivery_seconds", Help: "From the Redis script that routed a packet to its write to the client, by route: direct (to a stream), broadcast, mailbox (the oldest packet of a poll answer).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"route"}),
		Sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "realtime_cluster_sessions", Help: "Sessions in the whole cluster by state: handshaken (no transport yet), polling, streaming (every gateway reports the same: use max)."}, []string{"state"}),
		RedisRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "realtime_gateway_redis_rtt_seconds", Help: "Round trip of a Redis PING, measured every liveness period.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_disconnects_total", Help: "Sessions ended by this gateway by reason."}, []string{"reason"}),
		PublishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "realtime_gateway_signal_publish_seconds", Help: "Round trip of one signal batch to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_redis_errors_total", Help: "Redis errors by operation."}, []string{"op"}),
		QueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_send_queue_overflows_total", Help: "Streaming clients disconnected because their send queue was full (-send-queue packets or -send-queue-bytes bytes)."}),
		QueueByteOverflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_send_queue_byte_overflows_total", Help: "Streaming clients disconnected because the bytes queued and being written for them would have gone over -send-queue-bytes (also counted in realtime_gateway_send_queue_overflows_total)."}),
		MailboxDrain: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "realtime_gateway_poll_batch_packets", Help: "Packets per poll answer.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128}}),
		MailboxDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "realtime_gateway_mailbox_depth_packets", Help: "Packets waiting in a polling session's mailbox when a poll drains it.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}}),
		RouteMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_route_messages_total", Help: "Route messages read from this gateway's route stream, by op."}, []string{"op"}),
		HandshakesWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_gateway_handshakes_waiting", Help: "Handshakes held now, waiting for the handshake rate or retrying the session store (at most -max-handshake-queue)."}),
		HandshakeWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "realtime_gateway_handshake_wait_seconds", Help: "Time a held handshake waited (for the handshake rate, and retrying the session store) before its answer; handshakes answered without waiting are not observed.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		InvalidUTF8: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_invalid_utf8_total", Help: "Frames and bodies from clients (in) and packets to clients (out) that held invalid UTF-8, repaired with U+FFFD, by direction."}, []string{"direction"}),
		HandshakeHeadersDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_handshake_headers_dropped_total", Help: "Allow-listed request headers (-handshake-headers) not kept with a session because its handshake data would have exceeded -max-handshake-bytes (largest dropped first)."}),
		BodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_body_timeouts_total", Help: "Request bodies (POSTs) still arriving after -body-timeout, whose connection was closed."}),
		WriteTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_write_timeouts_total", Help: "Poll answers and htmlfile writes a client did not take within 10 s (it stopped reading), whose connection was closed, by transport."}, []string{"transport"}),
		IdleConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_gateway_idle_connections", Help: "Keep-alive client connections waiting for their next request now; each is closed after -idle-timeout."}),
		HeartbeatLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_heartbeat_lookups_total", Help: "Reads from Redis of when an htmlfile client that looked silent here last POSTed, by result: heard (a POST reached another gateway), silent (the session was ended for heartbeat_timeout), unknown (Redis failed or answered after 1 s: another heartbeat timeout was given)."}, []string{"result"}),
		StreamsOrphaned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_streams_orphaned_total", Help: "Streaming connections closed (without 0::, so the client reconnects) because their session record was gone from Redis (FLUSHALL, Redis restarted without its data)."}),
		RouteGaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_route_gaps_total", Help: "Times this gateway could not prove it read every route message committed for it, by reason (trimmed: read too late; stream_lost: Redis lost it; rolled_back: Redis came back with older data: a restart, a promoted replica that lagged); each ended every streaming session held here (delivery_gap), or for a rolled_back gap whose extent was found only those the rolled-back routes concerned, and woke every parked poll."}, []string{"reason"}),
		CommitRollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_commit_rollbacks_total", Help: "Times Redis came back without signal batches it had acknowledged to this gateway (a promoted replica that lagged, a restart from older data); the sessions whose packets they carried were ended (delivery_gap), and when the loss went further back than this gateway remembers (complete=false) every streaming session held here too."}, []string{"complete"}),
		RouteStreamFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_route_stream_failures_total", Help: "Outages of this gateway's route stream reader: reads failed (Redis unreachable, stalled, or the connection dropped) after reads had worked."}),
		RouteStreamResumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_route_stream_resumes_total", Help: "Times the route stream reader read again after an outage, from where it was (nothing missed unless a gap is counted)."}),
		PollsOrphaned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_polls_orphaned_total", Help: "Parked polls answered at once with 7:::1+0 (client not handshaken, reconnect: the 0.9 client handshakes again) because their session record was gone from Redis (FLUSHALL, Redis restarted without its data, a key evicted), by who found it: a POST of the session to this gateway (post), or the check of parked polls every heartbeat interval (check)."}, []string{"found_by"}),
		CommitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_commit_failures_total", Help: "Websocket sessions ended (transport closed without 0::, so the client reconnects) because a signal their client sent could not be committed to Redis (failed, timed out, or refused: OOM, read-only)."}),
		PostsRetried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "realtime_gateway_posts_retried_total", Help: "POSTs found to be a retry of a POST whose packets were already committed (the balancer retried it because its gateway died before answering): answered, nothing applied again."}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "realtime_gateway_ready", Help: "1 when the last /readyz check passed (not draining, Redis takes writes, a probe appended to the route stream was read back), else 0."}),
		ReadinessChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "realtime_gateway_readiness_changes_total", Help: "Changes of the /readyz result, by the state changed to (ready, unready)."}, []string{"to"}),
	}
	for _, to := range []string{"ready", "unready"} {
		m.ReadinessChanges.WithLabelValues(to) // exported at 0 before the first
	}
	for i := range m.byType {
		t := "unknown"
		if i < len(typeNames) {
			t = typeNames[i]
		}
		m.byType[i] = packetCounters{
			packetsIn: m.PacketsIn.WithLabelValues(t), bytesIn: m.BytesIn.WithLabelValues(t),
			packetsOut: m.PacketsOut.WithLabelValues(t), bytesOut: m.BytesOut.WithLabelValues(t),
		}
	}
	for i, route := range routeNames {
		m.delivery[i] = m.Delivery.WithLabelValues(route)
	}
	for r := notRejected + 1; r < numRejectReasons; r++ {
		m.byReason[r] = m.Rejected.WithLabelValues(r.String())
	}
	for _, r := range []bus.GapReason{bus.GapTrimmed, bus.GapLost, bus.GapRolledBack} {
		m.RouteGaps.WithLabelValues(string(r)) // exported at 0 before the first
	}
	m.CommitRollbacks.WithLabelValues("true") // exported at 0 before the first
	m.CommitRollbacks.WithLabelValues("false")
	for _, by := range []string{goneByPost, goneByCheck} {
		m.PollsOrphaned.WithLabelValues(by) // exported at 0 before the first
	}
	for _, dir := range utf8Directions {
		m.InvalidUTF8.WithLabelValues(dir) // exported at 0 before the first repair
	}
	if reg != nil {
		reg.MustRegister(m.Handshakes, m.Rejected, m.Connections, m.PacketsIn, m.PacketsOut, m.MailboxDepth, m.BytesIn, m.BytesOut, m.RedisRTT, m.Delivery, m.Sessions, m.Disconnects,
			m.PublishSeconds, m.RedisErrors, m.QueueOverflows, m.QueueByteOverflows, m.MailboxDrain, m.RouteMessages, m.HandshakesWaiting, m.HandshakeWait,
			m.InvalidUTF8, m.HandshakeHeadersDropped, m.BodyTimeouts, m.WriteTimeouts, m.IdleConnections, m.HeartbeatLookups, m.StreamsOrphaned, m.PollsOrphaned, m.CommitFailures, m.PostsRetried,
			m.RouteGaps, m.CommitRollbacks, m.RouteStreamFailures, m.RouteStreamResumes,
			m.Ready, m.ReadinessChanges)
	}
	return m
}

// rejected counts one rejection for reason (g.rejected also logs it).
func (m *Metrics) rejected(reason rejectReason) {
	if reason < numRejectReasons && m.byReason[reason] != nil {
		m.byReason[reason].Inc()
	}
}

// disconnected counts n sessions this gateway ended for reason.
func (m *Metrics) disconnected(reason bus.DisconnectReason, n int) {
	m.Disconnects.WithLabelValues(string(reason)).Add(float64(n))
}

// packetsOut counts packets written to clients, by type (the first byte of
// an encoded packet), and their bytes.
func (m *Metrics) packetsOut(packets []string) {
	for _, p := range packets {
		c := &m.byType[len(typeNames)]
		if len(p) > 0 && p[0] >= '0' && p[0] <= '8' {
			c = &m.byType[p[0]-'0']
		}
		c.packetsOut.Inc()
		c.bytesOut.Add(float64(len(p)))
	}
}

// packetIn counts a packet received from a client, of type t
// (protocol.Type, 0 to 8), and its bytes.
func (m *Metrics) packetIn(t int, bytes int) {
	c := &m.byType[len(typeNames)]
	if t >= 0 && t < len(typeNames) {
		c = &m.byType[t]
	}
	c.packetsIn.Inc()
	c.bytesIn.Add(float64(bytes))
}

var typeNames = [...]string{"disconnect", "connect", "heartbeat", "message", "json", "event", "ack", "error", "noop"}
