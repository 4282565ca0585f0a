package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/session"
)

// Transport names.
const (
	TransportWebSocket    = "websocket"
	TransportFlashSocket  = "flashsocket"
	TransportHTMLFile     = "htmlfile"
	TransportXHRPolling   = "xhr-polling"
	TransportJSONPPolling = "jsonp-polling"
)

// DefaultTransports is the reference server's default list, in its order
// (flashsocket is off by default there too). Config.Transports' default,
// and cmd/gateway's and cmd/demo's -transports.
var DefaultTransports = []string{TransportWebSocket, TransportHTMLFile, TransportXHRPolling, TransportJSONPPolling}

// DefaultOrigins allows every origin, as the reference's default `origins`
// setting ("*:*", socket.io 0.9 lib/manager.js). Config.Origins' default
// and cmd/gateway's -origins.
var DefaultOrigins = []string{"*:*"}

// DefaultHandshakeHeaders is Config.HandshakeHeaders' default (and
// cmd/gateway's -handshake-headers): the request headers a session keeps of
// its handshake, for the authorization hook and the apps
// (worker.Socket.Handshake). The reference keeps every header; these are
// the ones apps read (who the client is, where it came from through
// proxies, its cookies, its language), so a client cannot make Redis keep
// arbitrary headers for it.
var DefaultHandshakeHeaders = []string{"accept-language", "cookie", "forwarded", "host", "origin", "referer",
	"user-agent", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"}

// DefaultMaxHandshakeBytes is Config.MaxHandshakeBytes' default (and
// cmd/gateway's -max-handshake-bytes): 16 KiB of handshake JSON, room for
// the allow-listed headers of a browser with a few kilobytes of cookies.
const DefaultMaxHandshakeBytes = 16 << 10

// RedisWait is Config.RedisWait's default (cmd/gateway's -redis-wait).
const RedisWait = 4 * time.Second

// Timer defaults: the reference server's settings (socket.io 0.9
// lib/manager.js: heartbeat interval 25 s, heartbeat timeout 60 s, close
// timeout 60 s, polling duration 20 s, unused handshakes collected after
// about 30 s), used by Config and by the cmd/gateway flags of the same
// names. The session timers are pkg/session's defaults, which own them.
const (
	// DefaultHeartbeatInterval is Config.HeartbeatInterval's default.
	DefaultHeartbeatInterval = 25 * time.Second
	// DefaultHeartbeatTimeout is Config.HeartbeatTimeout's default.
	DefaultHeartbeatTimeout = 60 * time.Second
	// DefaultCloseTimeout is Config.CloseTimeout's default (60 s).
	DefaultCloseTimeout = session.DefaultCloseTimeout
	// DefaultPollingDuration is Config.PollingDuration's default (20 s).
	DefaultPollingDuration = session.DefaultPollingDuration
	// DefaultHandshakeTimeout is Config.HandshakeTimeout's default: the
	// reference garbage-collects unused handshakes after about 30 s.
	DefaultHandshakeTimeout = session.DefaultHandshakeTimeout
)

// Size, liveness and authorization defaults, used by Config and by the
// cmd/gateway flags.
const (
	// DefaultMaxPacketBytes is Config.MaxPacketBytes' default (-max-packet-bytes): 1 MiB.
	DefaultMaxPacketBytes = 1 << 20
	// DefaultMaxBodyBytes is Config.MaxBodyBytes' default (-max-body-bytes): 1 MiB.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultSendQueue is Config.SendQueue's default (-send-queue), in packets.
	DefaultSendQueue = 1024
	// DefaultSendQueueBytes is Config.SendQueueBytes' default
	// (-send-queue-bytes): 4 MiB, four of the largest packets a client may
	// send (an echo of them fits) and seconds of any realistic stream.
	DefaultSendQueueBytes = 4 << 20
	// DefaultReadBufferBytes is Config.ReadBufferBytes' default and
	// minimum, in bytes.
	DefaultReadBufferBytes = 512
	// DefaultAliveTTL is Config.AliveTTL's default (-liveness-ttl): a
	// gateway killed is found dead, and its websocket sessions ended with
	// reason gateway_lost (so their disconnects reach the workers), within
	// AliveTTL plus two renewal intervals (AliveTTL/4 each: its key found
	// gone by two reap rounds in a row) of its death, and no sooner than
	// AliveTTL: 3 to 4.5 s. The trade-off: a live gateway that cannot
	// renew its key for AliveTTL (its process starved of CPU, or its own
	// path to Redis stalled) is taken for dead too, and its
	// websocket clients reconnect (nothing is lost silently). A stall of
	// Redis itself, however long, is not taken for deaths (see aliveLoop).
	DefaultAliveTTL = 3 * time.Second
	// DefaultReapInterval is Config.ReapInterval's default.
	DefaultReapInterval = time.Second
	// DefaultAuthorizeTimeout is Config.AuthorizeTimeout's default
	// (-authorize-timeout).
	DefaultAuthorizeTimeout = 3 * time.Second
)

// Admission control defaults, used by Config and by the cmd/gateway flags.
const (
	// DefaultMaxHandshakeRate is the default MaxHandshakeRate, in handshakes
	// per second: the value cmd/gateway has always used. It bounds the Redis
	// writes a reconnect storm costs each gateway, well above what a
	// gateway's steady traffic needs.
	DefaultMaxHandshakeRate = 2000
	// DefaultHandshakeHold is the default HandshakeHold. socket.io-client
	// 0.9.16 (Socket.prototype.handshake and connect in
	// dist/socket.io.js) puts no timeout on the handshake request (neither
	// does the xmlhttprequest module it uses under Node); its 'connect
	// timeout' (10 s) starts only once the handshake is answered, when the
	// transport opens, and a reconnecting client whose handshake is still
	// pending does not start another one (maybeReconnect checks again every
	// second). So a held handshake costs the client nothing but time. 5 s
	// is half the client's connect timeout (a held user waits no longer
	// than the client itself waits for a slow transport) and far below the
	// idle timeouts of load balancers (30 to 60 s).
	DefaultHandshakeHold = 5 * time.Second
	// DefaultMaxHandshakeQueue is the default MaxHandshakeQueue:
	// DefaultMaxHandshakeRate × DefaultHandshakeHold, so that with both
	// defaults a burst is shed by the hold bound, not by the queue. A held
	// handshake costs a handler goroutine and an open connection with its
	// buffers (some tens of KiB), so at worst a few hundred MiB: less than
	// the connections DefaultMaxConnections admits.
	DefaultMaxHandshakeQueue = 10000
	// DefaultHandshakeAttemptTimeout is the default HandshakeAttemptTimeout:
	// a session commit takes well under a millisecond on a healthy Redis;
	// 1 s leaves room for several attempts in DefaultHandshakeHold.
	DefaultHandshakeAttemptTimeout = time.Second
	// DefaultMaxConnections is the default MaxConnections.
	DefaultMaxConnections = 100000
	// DefaultMaxBadPackets is Config.MaxBadPackets' default
	// (-max-bad-packets): 100 rejected packets in a row. The 0.9 client
	// sends none; a broken or hostile one is cut off after 100.
	DefaultMaxBadPackets = 100
	// DefaultMaxNamespaces is Config.MaxNamespaces' default
	// (-max-namespaces): session.DefaultMaxNamespaces (32; why: see there).
	DefaultMaxNamespaces = session.DefaultMaxNamespaces
)

// HTTP connection defaults, used by Config, Gateway.HTTPServer and the
// cmd/gateway flags. A client that holds a connection without using it
// costs a file descriptor and buffers; these bound how long.
const (
	// DefaultHeaderTimeout bounds reading a request's headers
	// (http.Server.ReadHeaderTimeout): 10 s.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout is Config.BodyTimeout's default (-body-timeout):
	// 10 s to send a POST body (at most -max-body-bytes, 1 MiB: 100 KiB/s
	// is enough), far below the client's 20 s and more than any 0.9 client
	// on a working network needs.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultIdleTimeout is Config.IdleTimeout's default (-idle-timeout):
	// 60 s, longer than a polling client's pause between requests (it
	// polls again at once) and than the heartbeat interval (25 s, on
	// which htmlfile clients POST), so only connections nobody uses are
	// closed.
	DefaultIdleTimeout = 60 * time.Second
)

// Config configures a Gateway. Zero fields take the documented defaults.
type Config struct {
	// Node is this gateway's id, unique in the cluster. Default: generated.
	Node string
	// Keys names the Redis keys. Default: bus.NewKeys("", 0).
	Keys bus.Keys
	// HeartbeatInterval is how often streaming transports send 2::.
	// Default: DefaultHeartbeatInterval (25s).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is told to clients in the handshake; a streaming
	// client (websocket, flashsocket, htmlfile) that sends nothing for this
	// long is disconnected with reason heartbeat_timeout (an htmlfile
	// client's POSTs count, on whichever gateway they land; see
	// heartbeat.go). Default: DefaultHeartbeatTimeout (60s).
	HeartbeatTimeout time.Duration
	// CloseTimeout is told to clients in the handshake; a polling session
	// with no contact for this long after its last poll ends. Default:
	// DefaultCloseTimeout (60s).
	CloseTimeout time.Duration
	// PollingDuration is how long a poll GET is held before 8::. Default:
	// DefaultPollingDuration (20s).
	PollingDuration time.Duration
	// HandshakeTimeout ends a handshaken session that never opens a
	// transport. Default: DefaultHandshakeTimeout (30s).
	HandshakeTimeout time.Duration
	// Transports lists the enabled transports in preference order.
	// Default: DefaultTransports.
	Transports []string
	// Origins is the allow-list of "host:port" patterns ("*" wildcards).
	// Default: DefaultOrigins (all).
	Origins []string
	// HandshakeHeaders names the request headers (case-insensitive; "host"
	// is the request's Host) a session keeps of its handshake, in
	// session.Handshake.Headers (lower-cased, repeated values joined with
	// ", "); the others are not kept. Default: DefaultHandshakeHeaders.
	HandshakeHeaders []string
	// MaxHandshakeBytes bounds what a session keeps of its handshake, in
	// bytes of its JSON (the Redis session field hs, and the data the
	// authorization hook gets). Over it, kept headers are dropped, largest
	// first, until it fits (counted in
	// realtime_gateway_handshake_headers_dropped_total); a handshake whose
	// query and URL alone are over it is refused with 414 (reason
	// handshake_too_large). Default: DefaultMaxHandshakeBytes (16 KiB).
	MaxHandshakeBytes int
	// MaxPacketBytes bounds one packet (a websocket frame, or one packet of a
	// POSTed payload), in bytes. Default: DefaultMaxPacketBytes (1 MiB).
	MaxPacketBytes int
	// MaxBodyBytes bounds a POST body, in bytes. Default:
	// DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// BodyTimeout bounds the time to read a request's body (a polling or
	// htmlfile POST), from the end of its headers: a body still arriving
	// after it fails to read (the POST gets 400 body_read, or nothing when
	// the client has stopped reading) and the connection is closed;
	// counted in realtime_gateway_body_timeouts_total. Requests without a
	// body (polls, htmlfile streams, websocket upgrades) are not bounded by
	// it. Default: DefaultBodyTimeout (10s).
	BodyTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that carries no request
	// for this long (http.Server.IdleTimeout of Gateway.HTTPServer); a
	// parked poll, an htmlfile stream or a websocket is never idle.
	// Default: DefaultIdleTimeout (60s).
	IdleTimeout time.Duration
	// MailboxBytes bounds a polling session's mailbox, in bytes of packets
	// waiting for a poll: beyond it the mailbox is tolerated only while the
	// client drains it (its oldest waiting packet has waited less than
	// MailboxDrainTimeout), and never beyond session.MailboxHardFactor (4)
	// times it; a delivery that breaks either rule ends the session with
	// reason "overflow". Written into each session at its handshake, so
	// every gateway and worker delivering to it applies the same bounds.
	// Default: session.DefaultMailboxBytes (1 MiB).
	MailboxBytes int
	// MailboxDrainTimeout: see MailboxBytes. Default:
	// session.DefaultMailboxDrainTimeout (10s).
	MailboxDrainTimeout time.Duration
	// PollBatchBytes bounds one poll answer: a poll takes everything
	// waiting, up to this many bytes (at least one packet). Default:
	// session.DefaultPollBatchBytes (1 MiB).
	PollBatchBytes int
	// SendQueue bounds a streaming connection's outbound queue in packets;
	// overflow disconnects the slow client with reason "overflow".
	// Default: DefaultSendQueue (1024). The queue costs nothing while empty.
	SendQueue int
	// SendQueueBytes bounds the same queue in bytes: the packets queued plus
	// those being written (a client that does not read holds them); a
	// packet that would take it beyond disconnects the client with reason
	// "overflow" (counted in realtime_gateway_send_queue_overflows_total and
	// realtime_gateway_send_queue_byte_overflows_total). One packet is
	// always taken when nothing is held, whatever its size. Default:
	// DefaultSendQueueBytes (4 MiB).
	SendQueueBytes int
	// ReadBufferBytes is the read buffer of each websocket connection, held
	// for the connection's life; a larger frame is read in several syscalls.
	// Default and minimum: DefaultReadBufferBytes (512).
	ReadBufferBytes int
	// AliveTTL is the lifetime of this gateway's liveness key; it is renewed
	// every AliveTTL/4. Other gateways reap this gateway's streaming sessions
	// once it has expired, within an interval. Default: DefaultAliveTTL (3s;
	// the trade-off is described there).
	AliveTTL time.Duration
	// ReapInterval is how often this gateway looks for expired sessions and
	// dead gateways. Default: DefaultReapInterval (1s).
	ReapInterval time.Duration
	// RouteRefresh is how often this gateway reads the cluster's gateways
	// into its route table (session.Store.RefreshRoutes: the gateways whose
	// route streams its session scripts declare), and a gateway new to the
	// cluster waits session.RouteJoinWaits times it before it serves
	// (session.Store.Alive). Every gateway of a cluster must use the same.
	// Default: session.DefaultRouteRefresh (1s).
	RouteRefresh time.Duration
	// RedisWait is how long a polling POST (or a disconnect request) waits
	// for Redis, in all (touching its session, then committing its
	// signals), before it is answered 503: a Redis pause or failover shorter
	// than this is ridden out and the POST answered 200, which the 0.9
	// client needs to keep its session (it drops the session on any other
	// status; it puts no deadline on a POST). Set it above the failover time
	// of your Redis (Sentinel, Redis Cluster) for polling clients to keep
	// their sessions through one. cmd/gateway sets the Redis client's
	// per-command read and write timeouts to it too, so no go-redis default
	// (3 s) cuts a call shorter; the signal committer's batch timeout is
	// at least a second longer (bus.CommitterConfig.Timeout, at least 5 s),
	// so a batch still in flight when a POST gives up may yet be committed.
	// Default: RedisWait (4s; TestPollingRidesOutRedisPause rides out 2 s).
	RedisWait time.Duration
	// ClientScript is the path of the Socket.IO 0.9 client script served at
	// /socket.io/socket.io.js; /socket.io/socket.io.min.js serves the
	// minified build next to it (MinClientScript), or 404 when it is not
	// there. Default: "" (404 with a hint).
	ClientScript string
	// StaticDir, if set, is served at / (the chat page). Default: "".
	StaticDir string
	// MaxHandshakeRate bounds handshakes per second, with bursts of up to the
	// same number (at least 1). A handshake over the rate is held until the
	// rate admits it, at most HandshakeHold and with at most
	// MaxHandshakeQueue held at once; beyond either it gets 503 at once.
	// Negative: no limit. Default: DefaultMaxHandshakeRate (also the
	// cmd/gateway flag's default).
	MaxHandshakeRate float64
	// MaxHandshakeQueue bounds the handshakes held at once (waiting for the
	// rate, or retrying an unreachable session store); beyond it a handshake
	// that would have to wait gets 503 at once. Default:
	// DefaultMaxHandshakeQueue.
	MaxHandshakeQueue int
	// HandshakeHold bounds how long a handshake is held, from its arrival,
	// before it is answered: waiting for the rate, and retrying the session
	// store while Redis is unreachable. Default: DefaultHandshakeHold (why
	// that value: see there).
	HandshakeHold time.Duration
	// HandshakeAttemptTimeout bounds one attempt to commit a handshake's
	// session to Redis, so that one attempt against a Redis that does not
	// answer cannot use up HandshakeHold: the attempt is abandoned and
	// retried. It is a context deadline, so it cuts a stalled round trip
	// only if the Redis client lets deadlines reach the socket (go-redis
	// Options.ContextTimeoutEnabled, which cmd/gateway sets); otherwise an
	// attempt lasts up to the client's ReadTimeout. Default:
	// DefaultHandshakeAttemptTimeout.
	HandshakeAttemptTimeout time.Duration
	// MaxConnections bounds the streams held plus polls parked here; beyond
	// it handshakes and websocket upgrades get 503 at once. Negative: no
	// limit. Default: DefaultMaxConnections (also the cmd/gateway flag's
	// default).
	MaxConnections int
	// MaxBadPackets bounds the rejected frames and packets in a row (see
	// reject.go: malformed, bad namespace, binary frame, ...) a websocket or
	// flashsocket client may send: at the next the connection is closed and
	// its session ended with reason "bad_input" (counted in
	// realtime_gateway_disconnects_total{reason="bad_input"}). An accepted
	// packet starts the count again. Every rejection is counted; the log
	// lines are rate-limited (rejectLogEvery). Default:
	// DefaultMaxBadPackets (100).
	MaxBadPackets int
	// MaxNamespaces bounds the namespaces one session connects besides the
	// default one. A connect packet (1::/ns) beyond it is refused: the
	// client gets 7::/ns:2 (reason unauthorized, as a refused namespace
	// authorization; the 0.9 client emits connect_failed on that
	// namespace), nothing is written to Redis, and it is counted in
	// realtime_gateway_rejected_total{reason="too_many_namespaces"} and
	// logged (rate-limited). Redis enforces the same bound
	// (session.Config.MaxNamespaces) against POSTs racing each other.
	// Default: DefaultMaxNamespaces (32).
	MaxNamespaces int
	// SessionBindingSecret, when set, binds each session to the browser
	// that made its handshake with an HttpOnly cookie, which every
	// transport request of the session must carry (binding.go). Every
	// gateway of a cluster needs the same secret; 32 random bytes are
	// plenty. Default: none (off: the session id alone identifies a
	// session, as in the 0.9 protocol).
	SessionBindingSecret []byte
	// Authorize asks the workers (their OnAuthorize hook) to allow each
	// handshake before answering it. Default: false.
	Authorize bool
	// AuthorizeTimeout bounds the wait for a worker's answer. Default:
	// DefaultAuthorizeTimeout (3s).
	AuthorizeTimeout time.Duration
	// AuthorizeFailOpen admits handshakes when no answer comes in time (or
	// Redis fails); by default they are refused with 500 "handshake error".
	AuthorizeFailOpen bool
	// Logger receives the gateway's logs. Default: slog.Default().
	Logger *slog.Logger
}

// ErrTimers is returned by New for timer settings that make 0.9 clients
// drop healthy connections.
var ErrTimers = errors.New("gateway: inconsistent timers")

// ErrLimits is returned by New for size limits under which a well-behaved
// client is ended: a mailbox that cannot hold what one accepted packet or
// POST may produce.
var ErrLimits = errors.New("gateway: inconsistent limits")

// ErrNodeID is returned by New for a node id with a space or a control
// character: session records name a gateway as "<node> <poll id>", and a
// script's route table lists node ids one per line.
var ErrNodeID = errors.New("gateway: node id must be printable, without spaces")

// checkNode rejects a node id ErrNodeID describes.
func (c *Config) checkNode() error {
	if strings.ContainsFunc(c.Node, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: %q", ErrNodeID, c.Node)
	}
	return nil
}

// ErrOrigins is returned by New for an Origins entry that no origin could
// match: the check takes "host:port", "host:*" and "*:port" only, as the
// reference's does (socket.io 0.9 manager.js verifyOrigin), so a pattern
// without a port, or with a wildcard inside a host ("*.example.com:443"),
// would refuse every page while the Flash policy file granted it.
var ErrOrigins = errors.New("gateway: origins pattern never matches")

// checkOrigins rejects Origins entries that are not "host:port" with host a
// name or "*" and port a number or "*".
func (c *Config) checkOrigins() error {
	for _, o := range c.Origins {
		i := strings.LastIndex(o, ":") // an IPv6 host has colons of its own
		if i <= 0 {
			return fmt.Errorf("%w: %q: want host:port, host:* or *:port", ErrOrigins, o)
		}
		host, port := o[:i], o[i+1:]
		_, err := strconv.ParseUint(port, 10, 16)
		switch {
		case strings.HasPrefix(host, "["):
			return fmt.Errorf("%w: %q: write an IPv6 host without brackets (::1:8080), as an origin's host is compared", ErrOrigins, o)
		case host != "*" && strings.Contains(host, "*"):
			return fmt.Errorf("%w: %q: a host is a name or *, not a pattern (list each host)", ErrOrigins, o)
		case port != "*" && err != nil:
			return fmt.Errorf("%w: %q: a port is a number or *", ErrOrigins, o)
		}
	}
	return nil
}

// checkLimits rejects a mailbox whose hard bound (session.MailboxHardFactor
// times MailboxBytes) is smaller than one packet or one POST body the
// gateway accepts: an echo of it would end a session that drains as fast
// as it can.
func (c *Config) checkLimits() error {
	hard := int64(c.MailboxBytes) * session.MailboxHardFactor
	if hard < int64(c.MaxPacketBytes) || hard < c.MaxBodyBytes {
		return fmt.Errorf("%w: %d times the mailbox bytes (%d) must be at least the largest packet (%d) and POST body (%d), or one echo of them ends the session",
			ErrLimits, session.MailboxHardFactor, c.MailboxBytes, c.MaxPacketBytes, c.MaxBodyBytes)
	}
	return nil
}

// checkTimers rejects settings under which the official client disconnects
// by itself: it closes any transport (websocket included) that receives
// nothing for the close timeout, and any streaming one that receives nothing
// for the heartbeat timeout; so heartbeats and poll answers must come sooner.
func (c *Config) checkTimers() error {
	limit := min(c.CloseTimeout, c.HeartbeatTimeout)
	if c.HeartbeatInterval >= limit {
		return fmt.Errorf("%w: heartbeat interval %v must be shorter than the close timeout (%v) and the heartbeat timeout (%v), or clients drop idle websockets",
			ErrTimers, c.HeartbeatInterval, c.CloseTimeout, c.HeartbeatTimeout)
	}
	if c.PollingDuration >= c.CloseTimeout {
		return fmt.Errorf("%w: polling duration %v must be shorter than the close timeout (%v), or polling clients drop idle polls",
			ErrTimers, c.PollingDuration, c.CloseTimeout)
	}
	return nil
}

func (c *Config) defaults() {
	if c.Node == "" {
		c.Node = "gw-" + randomID(6)
	}
	if c.Keys.IsZero() {
		c.Keys = bus.NewKeys("", 0)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	def(&c.PollingDuration, DefaultPollingDuration)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.AliveTTL, DefaultAliveTTL)
	def(&c.RouteRefresh, session.DefaultRouteRefresh)
	def(&c.ReapInterval, DefaultReapInterval)
	def(&c.RedisWait, RedisWait)
	def(&c.AuthorizeTimeout, DefaultAuthorizeTimeout)
	def(&c.HandshakeHold, DefaultHandshakeHold)
	def(&c.HandshakeAttemptTimeout, DefaultHandshakeAttemptTimeout)
	def(&c.BodyTimeout, DefaultBodyTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxHandshakeRate == 0 {
		c.MaxHandshakeRate = DefaultMaxHandshakeRate
	}
	if c.MaxHandshakeQueue <= 0 {
		c.MaxHandshakeQueue = DefaultMaxHandshakeQueue
	}
	if c.MaxBadPackets <= 0 {
		c.MaxBadPackets = DefaultMaxBadPackets
	}
	if c.MaxNamespaces <= 0 {
		c.MaxNamespaces = DefaultMaxNamespaces
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if len(c.Transports) == 0 {
		c.Transports = DefaultTransports
	}
	if len(c.Origins) == 0 {
		c.Origins = DefaultOrigins
	}
	if len(c.HandshakeHeaders) == 0 {
		c.HandshakeHeaders = DefaultHandshakeHeaders
	}
	headers := make([]string, 0, len(c.HandshakeHeaders))
	for _, h := range c.HandshakeHeaders {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" && !slices.Contains(headers, h) {
			headers = append(headers, h)
		}
	}
	c.HandshakeHeaders = headers
	if c.MaxHandshakeBytes <= 0 {
		c.MaxHandshakeBytes = DefaultMaxHandshakeBytes
	}
	if c.MaxPacketBytes <= 0 {
		c.MaxPacketBytes = DefaultMaxPacketBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MailboxBytes <= 0 {
		c.MailboxBytes = session.DefaultMailboxBytes
	}
	def(&c.MailboxDrainTimeout, session.DefaultMailboxDrainTimeout)
	if c.PollBatchBytes <= 0 {
		c.PollBatchBytes = session.DefaultPollBatchBytes
	}
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.ReadBufferBytes <= 0 {
		c.ReadBufferBytes = DefaultReadBufferBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
