package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// Config configures a Store. Zero fields take the documented defaults.
type Config struct {
	// Keys names the keys; default bus.NewKeys("", 0).
	Keys bus.Keys
	// Node is the id of the process using the store (a gateway's node id);
	// it appears in signals' "gw" field and owns streams it opens. Required.
	Node string
	// HandshakeTimeout ends a handshaken session that never opens a
	// transport. Default: DefaultHandshakeTimeout (30s).
	HandshakeTimeout time.Duration
	// CloseTimeout ends a polling session with no transport contact for this
	// long after its last poll's deadline. Default: DefaultCloseTimeout (60s).
	CloseTimeout time.Duration
	// PollingDuration is how long a poll may be parked. Default:
	// DefaultPollingDuration (20s).
	PollingDuration time.Duration
	// MailboxBytes bounds a polling session's mailbox in bytes of packets:
	// beyond it the mailbox is tolerated only while the client drains it
	// (its oldest waiting packet has waited less than MailboxDrainTimeout),
	// and never beyond MailboxHardFactor times it; a delivery that breaks
	// either rule ends the session with reason "overflow". The gateway that
	// creates a session writes both bounds into it, so every process that
	// delivers (gateways, workers, emitters) honours the same bounds.
	// Default: DefaultMailboxBytes.
	MailboxBytes int
	// MailboxDrainTimeout is how long a mailbox over MailboxBytes may keep
	// its oldest packet waiting before the session is ended (overflow).
	// Default: DefaultMailboxDrainTimeout.
	MailboxDrainTimeout time.Duration
	// PollBatchBytes bounds one poll answer: a poll takes every packet
	// waiting, up to this many bytes (at least one packet is always taken).
	// Default: DefaultPollBatchBytes.
	PollBatchBytes int
	// BatchConfirmWait is how long a poll that carries the same cache-buster
	// as the poll whose batch is still in flight waits for that batch's
	// answer to be confirmed (written whole by its gateway) before it takes
	// the batch over and delivers it again (see Poll). The confirmation
	// comes within a Redis round trip of the write; only a gateway that
	// died, or lost Redis, between taking a batch and writing it lets this
	// wait run out. Default: DefaultBatchConfirmWait.
	BatchConfirmWait time.Duration
	// MaxNamespaces bounds the namespaces a session connects besides the
	// default one: join.lua refuses (changes nothing for) a join beyond it
	// (JoinWrite). The gateway checks the same bound before it writes a
	// join, and answers the client; this is the backstop for POSTs of one
	// session racing each other. Default: DefaultMaxNamespaces (32).
	MaxNamespaces int
	// ExclusiveStreams makes OpenStream refuse (ErrSessionHeld) a session
	// a streaming transport opened already, instead of moving it to the
	// new connection (and closing the old one with reason replaced): the
	// 0.9 client never opens a second stream on one sid (it handshakes
	// again), so only someone else holding the sid would. The gateway
	// sets it. Default: false (the old behaviour).
	ExclusiveStreams bool
	// PerPartition runs a commit (Apply) as one commit.lua per partition,
	// effects on other partitions going through the outbox, as a Redis
	// Cluster whose partitions are spread over slots requires; New sets it
	// there (bus.Spread). Elsewhere every partition is on one node and
	// Apply runs one commit_node.lua for the whole commit, with no outbox;
	// tests set it to run the per-partition scripts on one Redis.
	PerPartition bool
	// RouteRefresh is how old the store's route table (the gateways whose
	// route keys its scripts declare, see RefreshRoutes) may get before a
	// script the store runs reads it again; a gateway refreshes it this
	// often, and a gateway new to the cluster waits RouteJoinWaits times
	// this before sessions may name it (Alive). Every gateway of a cluster
	// must use the same. Default: DefaultRouteRefresh (1s).
	RouteRefresh time.Duration
}

// Timer defaults (Config): the reference server's settings (socket.io 0.9
// lib/manager.js). pkg/gateway's defaults of the same names are these.
const (
	// DefaultHandshakeTimeout is Config.HandshakeTimeout's default: the
	// reference garbage-collects unused handshakes after about 30 s.
	DefaultHandshakeTimeout = 30 * time.Second
	// DefaultCloseTimeout is Config.CloseTimeout's default, the
	// reference's close timeout.
	DefaultCloseTimeout = 60 * time.Second
	// DefaultPollingDuration is Config.PollingDuration's default, the
	// reference's polling duration.
	DefaultPollingDuration = 20 * time.Second
)

// Mailbox and poll defaults (Config).
const (
	DefaultMailboxBytes        = 1 << 20
	DefaultMailboxDrainTimeout = 10 * time.Second
	DefaultPollBatchBytes      = 1 << 20
	// MailboxHardFactor times MailboxBytes is what a mailbox never exceeds,
	// however fast its client drains it.
	MailboxHardFactor = 4
	// DefaultBatchConfirmWait is Config.BatchConfirmWait's default.
	DefaultBatchConfirmWait = 2 * time.Second
)

// Per-session state bounds (issue 16): what one client can make Redis keep
// for its session, and the work ending it costs (each namespace and room
// is a set membership removed at the end, in one script).
const (
	// DefaultMaxNamespaces is Config.MaxNamespaces' default (and
	// cmd/gateway's -max-namespaces): 32 namespaces besides the default
	// one. Apps multiplex a handful (the reference's examples use one to
	// three); 32 leaves room for any of them while keeping a session's
	// namespace set, and its end, small.
	DefaultMaxNamespaces = 32
	// DefaultMaxRooms is the default bound of the rooms one session is in,
	// over all its namespaces (worker.Config.MaxRooms, cmd/worker's
	// -max-rooms): 1024, far more than a chat user's channels, and an end
	// that removes at most 1024 memberships (well under a millisecond).
	DefaultMaxRooms = 1024
	// DefaultMaxRoomBytes is the default bound of a room name, in bytes
	// (worker.Config.MaxRoomBytes, cmd/worker's -max-room-bytes): 256,
	// as for namespace names; a room name is part of two Redis key names
	// and of every route message about the room.
	DefaultMaxRoomBytes = 256
)

func (c *Config) defaults() {
	if c.MaxNamespaces <= 0 {
		c.MaxNamespaces = DefaultMaxNamespaces
	}
	if c.Keys.IsZero() {
		c.Keys = bus.NewKeys("", 0)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.PollingDuration <= 0 {
		c.PollingDuration = DefaultPollingDuration
	}
	if c.MailboxBytes <= 0 {
		c.MailboxBytes = DefaultMailboxBytes
	}
	if c.MailboxDrainTimeout <= 0 {
		c.MailboxDrainTimeout = DefaultMailboxDrainTimeout
	}
	if c.PollBatchBytes <= 0 {
		c.PollBatchBytes = DefaultPollBatchBytes
	}
	if c.BatchConfirmWait <= 0 {
		c.BatchConfirmWait = DefaultBatchConfirmWait
	}
	if c.RouteRefresh <= 0 {
		c.RouteRefresh = DefaultRouteRefresh
	}
}

// Handshake is what a session keeps of its handshake request; workers see it
// as the socket's handshake data. The gateway bounds it
// (gateway.Config.HandshakeHeaders, MaxHandshakeBytes).
type Handshake struct {
	// Headers holds the request headers the gateway keeps (an allow-list,
	// not every header as the reference), by lower-case name, repeated
	// values joined with ", ".
	Headers map[string]string `json:"headers"`
	Query   string            `json:"query"`
	Address string            `json:"address"`
	Time    int64             `json:"time"` // unix ms
	XDomain bool              `json:"xdomain"`
	Secure  bool              `json:"secure"`
	URL     string            `json:"url"`
}

// Store reads and changes sessions in Redis.
type Store struct {
	rdb      redis.UniversalClient
	cfg      Config
	nodeKeys []string // every partition's deadlines set, then every one's signal stream: commit_node.lua's first KEYS
	routes   routes
	rejoin   struct {
		mu      sync.Mutex
		current *rejoin // the rejoin under way, if any
	}
}

// New returns a Store. It does not touch Redis.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg.defaults()
	cfg.PerPartition = cfg.PerPartition || bus.Spread(rdb, cfg.Keys)
	s := &Store{rdb: rdb, cfg: cfg}
	s.routes.read = make(chan struct{}, 1)
	for p := range cfg.Keys.Partitions() {
		s.nodeKeys = append(s.nodeKeys, cfg.Keys.Deadlines(p))
	}
	for p := range cfg.Keys.Partitions() {
		s.nodeKeys = append(s.nodeKeys, cfg.Keys.Stream(p))
	}
	return s
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// Keys returns the key names the store uses.
func (s *Store) Keys() bus.Keys { return s.cfg.Keys }

// args returns a script's ARGV: ARGV[1] the gateways of the route table
// ("" here: Store.run and Store.write fill it), ARGV[2] the time in unix
// ms, ARGV[3] this node, then extra (lua/lib.lua).
func (s *Store) args(extra ...any) []any {
	a := make([]any, 0, 3+len(extra))
	a = append(a, "", strconv.FormatInt(time.Now().UnixMilli(), 10), s.cfg.Node)
	return append(a, extra...)
}

// NewSID returns a new session id: 128 random bits, URL-safe base64 (22
// characters, no ':').
func NewSID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("session: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ttlMargin is how long a session's keys outlive its deadline. The deadline
// (enforced by the reapers, with a disconnect signal) ends sessions; the TTL
// is only a safety net for when no gateway runs a reaper for that long.
const ttlMargin = 10 * time.Minute

func (s *Store) pollTTL() int64 {
	return (s.cfg.PollingDuration + s.cfg.CloseTimeout + ttlMargin).Milliseconds()
}

// refreshSlack is how much shorter than its full length a polling
// session's deadline may get before a poll or POST pushes it forward
// again: a tenth of the deadline, at most a second. Clients that poll
// often then refresh it about once a second instead of on every request.
func (s *Store) refreshSlack() int64 {
	return min(time.Second, (s.cfg.PollingDuration+s.cfg.CloseTimeout)/10).Milliseconds()
}

// Create commits a new session before the handshake is answered.
func (s *Store) Create(ctx context.Context, hs Handshake) (string, error) {
	sid := NewSID()
	return sid, s.CreateWithID(ctx, sid, hs, "")
}

// CreateWithID commits a new session with a given id (from NewSID) and the
// data an authorization hook kept with it (JSON, "" none).
func (s *Store) CreateWithID(ctx context.Context, sid string, hs Handshake, authData string) error {
	hsJSON, err := json.Marshal(hs)
	if err != nil {
		return fmt.Errorf("session: encode handshake: %w", err)
	}
	now := time.Now()
	key, p := s.cfg.Keys.Session(sid), s.cfg.Keys.PartitionOf(sid)
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, key,
			"p", p,
			"st", "new",
			"ct", now.UnixMilli(),
			"hs", hsJSON,
			"ad", authData,
			"mxb", s.cfg.MailboxBytes,
			"mxw", s.cfg.MailboxDrainTimeout.Milliseconds())
		pipe.PExpire(ctx, key, s.cfg.HandshakeTimeout+ttlMargin)
		pipe.ZAdd(ctx, s.cfg.Keys.Deadlines(p), redis.Z{
			Score: float64(now.Add(s.cfg.HandshakeTimeout).UnixMilli()), Member: sid})
		return nil
	})
	if err != nil {
		return fmt.Errorf("session: create: %w", err)
	}
	return nil
}

// OpenStream attaches a streaming transport (websocket, flashsocket,
// htmlfile) held by this node. first reports whether this was the session's
// first transport (the default namespace was connected); queued are packets
// that waited in the mailbox, to be written after 1::.
//
// With Config.ExclusiveStreams, a session a streaming transport opened
// already is refused with ErrSessionHeld, and nothing changes.
func (s *Store) OpenStream(ctx context.Context, sid, transport string) (first bool, queued []string, err error) {
	exclusive := "0"
	if s.cfg.ExclusiveStreams {
		exclusive = "1"
	}
	p := s.cfg.Keys.PartitionOf(sid)
	res, err := s.run(ctx, openScript, p,
		s.sessionKeys(sid), s.args(sid, transport, exclusive)...).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return false, nil, ErrUnknownSession
		}
		return false, nil, fmt.Errorf("session: open %s: %w", transport, err)
	}
	if n, ok := res.(int64); ok && n == -2 {
		return false, nil, ErrSessionHeld
	}
	if n, ok := res.(int64); ok && n == -1 {
		return false, nil, ErrWrongTransport
	}
	arr, _ := res.([]any)
	if len(arr) != 2 {
		return false, nil, fmt.Errorf("session: open: unexpected reply %v", res)
	}
	return arr[0].(int64) == 1, toStrings(arr[1]), nil
}

// PollResult is what one run of Poll decided.
type PollResult int

// Poll outcomes.
const (
	PollAnswer     PollResult = iota // answer with Packets now
	PollParked                       // nothing to send: wait for a wake, a kick or the polling duration
	PollSuperseded                   // a newer poll took over: answer 8::
)

// PollReply is what one run of Poll decided.
type PollReply struct {
	Result PollResult
	// Packets answer the poll (PollAnswer).
	Packets []string
	// Owned is true when Packets are the session's batch in flight, taken
	// by this poll: once the answer is written whole the poll must Confirm
	// it (trimming it from the mailbox), or Release it if the write failed.
	Owned bool
	// Recheck, for a parked poll (PollParked), is how long it may wait for
	// a wake before it must run again: it waits for another poll's batch
	// to be confirmed (see Config.BatchConfirmWait), which wakes nobody.
	// Zero: only a wake, a kick or the polling duration end the wait.
	Recheck time.Duration
	// OnStream is true when the session is held by a streaming transport
	// (websocket, flashsocket, htmlfile): the poll is parked until the
	// polling duration ends or the session ends, and never answered with
	// the session's packets, which go to the stream.
	OnStream bool
	// Routed is when the oldest of Packets was routed to the mailbox (zero
	// if unknown: a re-delivered batch, or the connect packet).
	Routed time.Time
	// Depth is how many packets the mailbox held when this answer was
	// taken from it (0 for a re-delivered batch).
	Depth int
}

// Poll serves a polling GET identified by pollID (unique on this node) whose
// request carried cache-buster t ("" if none). rerun is true when the same
// request runs again after a wake or a recheck.
//
// Which batch a poll gets (docs/redis.md, "Polling delivery"): a poll whose
// t differs from the t of the batch in flight trims that batch (the 0.9
// client sends its next poll only after it received the previous answer),
// then takes what waits. A poll with the same t (a load balancer retrying a
// GET whose answer never came, or a client whose clock did not tick between
// two polls) is told apart by the batch's confirmation: a confirmed batch
// was written whole, so the poll is a new one and gets new packets; an
// unconfirmed one is delivered again once its gateway released it or
// Config.BatchConfirmWait passed since it was taken, and until then the poll waits.
func (s *Store) Poll(ctx context.Context, sid, transport, pollID, t string, rerun bool) (PollReply, error) {
	if rerun {
		return s.poll(ctx, sid, transport, pollID, t, "1")
	}
	return s.poll(ctx, sid, transport, pollID, t, "0")
}

// PollEnd runs a parked poll once more as its polling duration ends (or
// its gateway drains): a packet a delivery took for it meanwhile
// (docs/redis.md, "Offered packets") is its answer (PollAnswer, Owned);
// otherwise the poll is no longer parked, so no delivery is taken for it
// any more, and the reply is PollSuperseded (answer 8::).
func (s *Store) PollEnd(ctx context.Context, sid, transport, pollID, t string) (PollReply, error) {
	return s.poll(ctx, sid, transport, pollID, t, "2")
}

// poll runs poll.lua; run is its ARGV[12]: "0" a poll's first run, "1" a
// run again after a wake or a recheck, "2" PollEnd.
func (s *Store) poll(ctx context.Context, sid, transport, pollID, t, run string) (PollReply, error) {
	now := time.Now()
	deadline := now.Add(s.cfg.PollingDuration + s.cfg.CloseTimeout).UnixMilli()
	ttl := s.pollTTL()
	p := s.cfg.Keys.PartitionOf(sid)
	res, err := s.run(ctx, pollScript, p,
		s.sessionKeys(sid),
		s.args(sid, transport, pollID, t, deadline, ttl, s.cfg.PollBatchBytes, s.cfg.BatchConfirmWait.Milliseconds(), run, s.refreshSlack())...).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return PollReply{}, ErrUnknownSession
		}
		return PollReply{}, fmt.Errorf("session: poll: %w", err)
	}
	if n, ok := res.(int64); ok && n == -1 {
		return PollReply{}, ErrWrongTransport
	}
	arr, _ := res.([]any)
	if len(arr) == 0 {
		return PollReply{}, fmt.Errorf("session: poll: unexpected reply %v", res)
	}
	switch arr[0].(int64) {
	case 1:
		r := PollReply{Result: PollAnswer, Packets: toStrings(arr[1])}
		if len(arr) > 4 {
			mt, _ := arr[2].(string)
			if ms, _ := strconv.ParseInt(mt, 10, 64); ms > 0 {
				r.Routed = time.UnixMilli(ms)
			}
			depth, _ := arr[3].(int64)
			r.Depth = int(depth)
			owned, _ := arr[4].(int64)
			r.Owned = owned == 1
		}
		return r, nil
	case 2:
		return PollReply{Result: PollSuperseded}, nil
	case 3:
		return PollReply{Result: PollParked, OnStream: true}, nil
	default:
		r := PollReply{Result: PollParked}
		if len(arr) > 1 {
			ms, _ := arr[1].(int64)
			r.Recheck = time.Duration(ms) * time.Millisecond
		}
		return r, nil
	}
}

// ConfirmWrite confirms, as a step of a committer batch, that the answer of
// poll pollID of this node was written whole: if that poll owns the batch in
// flight, the session's next poll trims it whatever its cache-buster. It is
// one SET, cheaper than a script, as it is paid for every poll answer.
func (s *Store) ConfirmWrite(sid, pollID string) bus.Write {
	key, value, ttl := s.cfg.Keys.Confirmed(sid), s.cfg.Node+" "+pollID, time.Duration(s.pollTTL())*time.Millisecond
	return func(pipe redis.Pipeliner) error {
		pipe.Set(context.Background(), key, value, ttl)
		return nil
	}
}

// Release ends poll pollID of this node, whose request is over without its
// answer written (the write failed, its client left, or its Poll failed):
// the batch in flight it took, if it still owns it, goes to the next poll
// whatever its cache-buster, at once, and a run of its poll script that
// Redis executes later (one sent before Redis stalled, or sent again by
// go-redis after a timeout) takes nothing. Running it twice is safe.
func (s *Store) Release(ctx context.Context, sid, pollID string) error {
	return s.release(ctx, sid, pollID, "0")
}

// ReleaseOffer is Release for a poll that is over, or was replaced by a
// newer poll on its gateway, without having taken a packet offered to it
// (route O, docs/redis.md "Offered packets"): it gives that packet back
// for the next poll, unless a run of the poll took it meanwhile (then its
// answer carries it, and releasing it would deliver it twice).
func (s *Store) ReleaseOffer(ctx context.Context, sid, pollID string) error {
	return s.release(ctx, sid, pollID, "1")
}

func (s *Store) release(ctx context.Context, sid, pollID, offer string) error {
	err := s.run(ctx, releaseScript, s.cfg.Keys.PartitionOf(sid), s.sessionKeys(sid), s.args(sid, pollID, offer)...).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("session: release: %w", err)
	}
	return nil
}

// Touch records a POST's contact and returns the session's transport class
// ("poll", "stream", or "" before any transport opened) and its connected
// namespaces. For a streaming session (htmlfile, whose client POSTs to any
// gateway) it records the time as the session's last-heard time, which
// LastHeard reads. TouchPost does the same and also tells a retried POST
// from a new one.
func (s *Store) Touch(ctx context.Context, sid string) (class string, namespaces []string, err error) {
	r, err := s.touch(ctx, sid, Post{})
	return r.Class, r.Namespaces, err
}

func (s *Store) touch(ctx context.Context, sid string, p Post) (PostReply, error) {
	deadline := time.Now().Add(s.cfg.PollingDuration + s.cfg.CloseTimeout).UnixMilli()
	ttl := s.pollTTL()
	part := s.cfg.Keys.PartitionOf(sid)
	res, err := s.run(ctx, touchScript, part,
		s.sessionKeys(sid, s.cfg.Keys.Members(part), s.cfg.Keys.PollingMembers(part)),
		s.args(sid, deadline, ttl, s.refreshSlack(), p.T, p.Digest, s.cfg.BatchConfirmWait.Milliseconds(), p.Transport)...).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return PostReply{}, ErrUnknownSession
		}
		return PostReply{}, fmt.Errorf("session: touch: %w", err)
	}
	if n, ok := res.(int64); ok && n == -1 {
		return PostReply{}, ErrWrongTransport
	}
	arr := toStrings(res)
	if len(arr) < 2 {
		return PostReply{}, fmt.Errorf("session: touch: unexpected reply %v", res)
	}
	r := PostReply{Class: arr[0], Namespaces: arr[2:]}
	switch v := arr[1]; {
	case v == "r":
		r.Verdict = PostRetry
	case strings.HasPrefix(v, "w"):
		ms, err := strconv.Atoi(v[1:])
		if err != nil {
			return PostReply{}, fmt.Errorf("session: touch: unexpected verdict %q", v)
		}
		r.Verdict, r.Recheck = PostWait, time.Duration(ms)*time.Millisecond
	}
	return r, nil
}

// LastHeard returns when a POST last reached a streaming session (the
// time Touch recorded, in milliseconds, on the clock of the gateway that
// served the POST): the sign of life that an htmlfile client's heartbeat
// answers leave when they reach a gateway other than the one holding its
// stream. It is the zero time when none was recorded or the session is
// gone.
func (s *Store) LastHeard(ctx context.Context, sid string) (time.Time, error) {
	ms, err := s.rdb.HGet(ctx, s.cfg.Keys.Session(sid), "lh").Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("session: last heard: %w", err)
	}
	return time.UnixMilli(ms), nil
}

// End ends a session now: its disconnect signals are written and its holder
// is told to write packet ("" none) and close. It reports whether the session
// existed.
func (s *Store) End(ctx context.Context, sid string, reason bus.DisconnectReason, packet string) (bool, error) {
	n, err := s.run(ctx, endScript, s.cfg.Keys.PartitionOf(sid), s.sessionKeys(sid), s.args(sid, string(reason), packet)...).Int()
	if err != nil {
		return false, fmt.Errorf("session: end: %w", err)
	}
	return n == 1, nil
}

// EndWrite is End as a step of a committer batch, ordered after the
// session's earlier signals.
func (s *Store) EndWrite(sid string, reason bus.DisconnectReason, packet string) bus.Write {
	return s.write(endScript, s.cfg.Keys.PartitionOf(sid), s.sessionKeys(sid), s.args(sid, string(reason), packet)...)
}

// Deliver queues packets for a session wherever it is held. It returns
// ErrUnknownSession if the session is gone and ErrOverflow if its mailbox
// overflowed (the session was ended).
func (s *Store) Deliver(ctx context.Context, sid string, packets ...string) error {
	if len(packets) == 0 {
		return nil
	}
	args := s.args(sid)
	for _, p := range packets {
		args = append(args, p)
	}
	n, err := s.run(ctx, deliverScript, s.cfg.Keys.PartitionOf(sid), s.sessionKeys(sid), args...).Int()
	if err != nil {
		return fmt.Errorf("session: deliver: %w", err)
	}
	switch n {
	case 0:
		return ErrUnknownSession
	case -1:
		return ErrOverflow
	}
	return nil
}

// DeliverWrite is Deliver as a step of a committer batch.
func (s *Store) DeliverWrite(sid string, packets ...string) bus.Write {
	args := s.args(sid)
	for _, p := range packets {
		args = append(args, p)
	}
	return s.write(deliverScript, s.cfg.Keys.PartitionOf(sid), s.sessionKeys(sid), args...)
}

// JoinWrite connects namespace ns (with its connect query) as a step of a
// committer batch; echo queues the 1::<ns> answer in the mailbox. A join
// that would take the session beyond Config.MaxNamespaces namespaces
// besides the default one changes nothing.
func (s *Store) JoinWrite(sid, ns, query string, echo bool) bus.Write {
	e := "0"
	if echo {
		e = "1"
	}
	p := s.cfg.Keys.PartitionOf(sid)
	keys := s.sessionKeys(sid)
	// The namespaces set holds the default namespace too.
	args := s.args(sid, ns, query, e, s.cfg.MaxNamespaces+1)
	return s.write(joinScript, p, keys, args...)
}

// LeaveWrite disconnects namespace ns as a step of a committer batch.
func (s *Store) LeaveWrite(sid, ns string, reason bus.DisconnectReason) bus.Write {
	p := s.cfg.Keys.PartitionOf(sid)
	keys := s.sessionKeys(sid)
	return s.write(leaveScript, p, keys, s.args(sid, ns, string(reason))...)
}

// Transport returns the class ("poll" or "stream"; "" before any
// transport opened) and transport name of session sid, or
// ErrUnknownSession.
func (s *Store) Transport(ctx context.Context, sid string) (class, transport string, err error) {
	f, err := s.rdb.HMGet(ctx, s.cfg.Keys.Session(sid), "p", "cls", "tr").Result()
	if err != nil {
		return "", "", fmt.Errorf("session: transport: %w", err)
	}
	if f[0] == nil {
		return "", "", ErrUnknownSession
	}
	class, _ = f[1].(string)
	transport, _ = f[2].(string)
	return class, transport, nil
}

// Exists reports whether a session is in Redis.
func (s *Store) Exists(ctx context.Context, sid string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.cfg.Keys.Session(sid)).Result()
	if err != nil {
		return false, fmt.Errorf("session: exists: %w", err)
	}
	return n == 1, nil
}

// Namespaces returns the namespaces a session is connected to.
func (s *Store) Namespaces(ctx context.Context, sid string) ([]string, error) {
	ns, err := s.rdb.SMembers(ctx, s.cfg.Keys.SessionNamespaces(sid)).Result()
	if err != nil {
		return nil, fmt.Errorf("session: namespaces: %w", err)
	}
	return ns, nil
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// LogSIDChars is how many characters of a session id logs print (LogSID):
// 6 of its 22 (36 of its 128 random bits), enough to follow one session
// through the logs of every process, far too few to use it.
const LogSIDChars = 6

// LogSID returns what logs print of session id sid: its first LogSIDChars
// characters and "…" (a shorter id whole). A session id is the bearer
// token of its session (anyone holding it can send and poll as the
// client), so no process of the cluster logs one in full.
func LogSID(sid string) string {
	if len(sid) <= LogSIDChars {
		return sid
	}
	return sid[:LogSIDChars] + "…"
}
