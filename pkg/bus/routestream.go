package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A gateway's route stream (Keys.RouteStream) carries, in order, every route
// message committed for it: deliveries to the streaming sessions it holds,
// broadcasts, room joins and leaves, closes, wake-ups and kicks of polls
// parked on it, authorize answers and its own readiness probes. It replaces
// pub/sub, which loses what is in flight when a connection drops: a stream
// is read from the last entry read, so a reconnect, a Redis pause or a
// restart with its data (AOF) loses nothing.
//
// Entries have one field, RouteField, holding a route message or a batch
// (OpBatch). Writers append with the id "0-*" (Redis 7: the sequence part
// auto-incremented), so ids are dense, 0-1, 0-2, ...: the reader knows the
// id that must come next, and any other id proves entries were lost to
// trimming. Writers never create the stream (NOMKSTREAM): only the gateway
// does, when it opens it, so a stream lost with Redis's data stays lost
// until the gateway notices (and ends the sessions whose routes it may have
// missed) instead of silently starting over. Writers cap it at about
// RouteStreamMaxLen entries; the gateway trims what it has read.

// RouteField is the field of a route stream entry holding the route message.
const RouteField = "r"

// RouteStreamMaxLen is the approximate length (MAXLEN ~) writers cap a route
// stream at: a gateway that falls this far behind (or stops reading without
// dying) loses the oldest entries, which its reader detects as a gap. At a
// few hundred bytes an entry it bounds a stalled gateway's stream to tens of
// MB.
const RouteStreamMaxLen = 100_000

// ErrRouteStreamLost is returned by AppendRoute when the route stream does
// not exist (the gateway never opened it, it was reaped, or Redis lost it).
var ErrRouteStreamLost = errors.New("bus: route stream does not exist")

// AppendRoute appends one route message to the route stream key (as the
// session scripts' flush does): never creating the stream, capped at
// RouteStreamMaxLen. It returns the entry's sequence number.
func AppendRoute(ctx context.Context, rdb redis.Cmdable, key, msg string) (uint64, error) {
	id, err := rdb.XAdd(ctx, RouteArgs(key, msg)).Result()
	if err != nil {
		return 0, RouteAppendError(key, err)
	}
	return ParseRouteSeq(id)
}

// RouteArgs returns the XADD that AppendRoute sends, for a pipeline.
func RouteArgs(key, msg string) *redis.XAddArgs {
	return &redis.XAddArgs{
		Stream: key, NoMkStream: true, MaxLen: RouteStreamMaxLen, Approx: true,
		ID: "0-*", Values: []string{RouteField, msg},
	}
}

// RouteAppendError returns AppendRoute's error for the error of a RouteArgs
// XADD to key: ErrRouteStreamLost when the stream does not exist.
func RouteAppendError(key string, err error) error {
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %s", ErrRouteStreamLost, key)
	}
	return fmt.Errorf("bus: append route: %w", err)
}

// ParseRouteSeq returns the sequence number of a route stream entry id
// ("0-<seq>").
func ParseRouteSeq(id string) (uint64, error) {
	rest, ok := strings.CutPrefix(id, "0-")
	if !ok {
		return 0, fmt.Errorf("%w: route stream id %q", ErrBadRoute, id)
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: route stream id %q", ErrBadRoute, id)
	}
	return n, nil
}

// GapReason says why a route stream reader cannot prove it missed nothing.
type GapReason string

// Gap reasons (the reason label of realtime_gateway_route_gaps_total).
const (
	GapTrimmed    GapReason = "trimmed"     // entries were trimmed before they were read (the reader fell RouteStreamMaxLen behind)
	GapLost       GapReason = "stream_lost" // the stream is gone: Redis restarted empty, FLUSHALL, or the gateway was reaped as dead
	GapRolledBack GapReason = "rolled_back" // the stream no longer holds the last entry read: Redis restarted from older data, or failed over to a replica that lagged
)

// A Gap is a stretch of a route stream the reader could not read.
type Gap struct {
	Reason GapReason
	After  uint64 // the last sequence number read before the gap (Rewound: the entry the reader went back to)
	Next   uint64 // the first one read after it (GapTrimmed), or the entry the stream was opened again with (Rewound: the last entry read before the rollback was found)

	// Rewound is set for a GapRolledBack whose extent the reader found: the
	// stream still holds, unchanged, the entry numbered After, so Redis
	// came back with the stream as it was then (a replica holds a prefix
	// of its primary's history). The reader went back there and reads on
	// from it: what the stream holds after it (committed after the
	// rollback, among it what was committed again because its commit was
	// rolled back too) is read as usual. Only the routes in Lost, read
	// after After before the rollback and no longer in the stream, were
	// seen here but never happened for Redis; the caller ends what they
	// concerned. Without Rewound, anything may have been missed.
	Rewound bool
	Lost    []string // Rewound: the route messages (or batches) read after After, in order
}

// RouteReaderConfig configures a RouteReader. Zero fields take the named
// defaults.
type RouteReaderConfig struct {
	// Count is the most entries one read returns. Default: DefaultRouteReadCount.
	Count int64
	// Block is how long a read waits for entries; an idle reader checks
	// that its stream still exists once per Block. Default: DefaultRouteReadBlock.
	Block time.Duration
	// TrimEvery is how often the reader trims the entries it has read.
	// Default: DefaultRouteTrimEvery.
	TrimEvery time.Duration
	// RetryMin and RetryMax bound the wait between failed reads (doubling).
	// Defaults: DefaultRouteRetryMin, DefaultRouteRetryMax.
	RetryMin, RetryMax time.Duration
	// Keep is how many of the entries read last the reader remembers (and
	// leaves in the stream when it trims), at most KeepBytes bytes of
	// route messages, to find how far back a rollback went (Gap.Rewound).
	// Defaults: DefaultRouteKeep, DefaultRouteKeepBytes.
	Keep, KeepBytes int

	// Route is called with each route message (or batch), in order. It
	// must not block.
	Route func(msg string)
	// Gap is called once for each gap found, after the stream was opened
	// again (so routes committed from then on are read); the caller ends
	// whatever the missed routes may have concerned.
	Gap func(Gap)
	// Failed is called when a read fails after reads succeeded (once per
	// outage), Resumed when reading works again, with how long it failed.
	// Either may be nil.
	Failed  func(err error)
	Resumed func(outage time.Duration)
}

// RouteReader defaults.
const (
	DefaultRouteReadCount = 1024
	DefaultRouteReadBlock = time.Second
	DefaultRouteTrimEvery = time.Second
	DefaultRouteRetryMin  = 50 * time.Millisecond
	DefaultRouteRetryMax  = time.Second
	DefaultRouteKeep      = 1024
	DefaultRouteKeepBytes = 1 << 20
)

// RouteReader reads one gateway's route stream in order, from where it left
// off, across dropped connections and Redis restarts, and reports any gap
// it cannot prove empty. One goroutine calls Run.
type RouteReader struct {
	rdb     redis.UniversalClient
	key     string
	cfg     RouteReaderConfig
	last    uint64 // the sequence number of the last entry read
	lastMsg string // its route message, to check the reader's place against
	dials   atomic.Uint64

	// recent holds the entries read last, oldest first: at most cfg.Keep
	// of them and cfg.KeepBytes bytes of messages (recentBytes), the last
	// one always (it is last and lastMsg).
	recent      []readEntry
	recentBytes int
}

// readEntry is an entry the reader read: its sequence number and message.
type readEntry struct {
	seq uint64
	msg string
}

// NewRouteReader returns a reader of the route stream key.
func NewRouteReader(rdb redis.UniversalClient, key string, cfg RouteReaderConfig) *RouteReader {
	if cfg.Count <= 0 {
		cfg.Count = DefaultRouteReadCount
	}
	if cfg.Block <= 0 {
		cfg.Block = DefaultRouteReadBlock
	}
	if cfg.TrimEvery <= 0 {
		cfg.TrimEvery = DefaultRouteTrimEvery
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRouteRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(cfg.RetryMin, DefaultRouteRetryMax)
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultRouteKeep
	}
	if cfg.KeepBytes <= 0 {
		cfg.KeepBytes = DefaultRouteKeepBytes
	}
	r := &RouteReader{rdb: rdb, key: key, cfg: cfg}
	rdb.AddHook(dialCounter{&r.dials})
	return r
}

// dialCounter counts the connections a client dials. A read that dialed
// may have reached another Redis than the one read before (go-redis
// retries a read on a new connection unseen, and a Sentinel client dials
// the new primary after a failover), so the reader verifies its place
// before it uses what that read returned.
type dialCounter struct{ n *atomic.Uint64 }

func (d dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}

func (dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// openMarkerPrefix starts the route message that opens a route stream: a
// probe no gateway waits for (its nonce makes each opening entry unlike
// any other, for the reader's check of its place), so readers skip it.
const openMarkerPrefix = "P\nopen:"

// Open creates the stream if it does not exist (appending a marker entry)
// and positions the reader after its last entry: what was written for an
// earlier process of the same node is not for this one. Call it before the
// gateway takes sessions, so nothing routed to them is missed.
func (r *RouteReader) Open(ctx context.Context) error {
	marker := Route{Op: OpProbe, SID: strings.TrimPrefix(openMarkerPrefix, "P\n") + strconv.FormatInt(time.Now().UnixNano(), 36)}.String()
	id, err := r.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: r.key, MaxLen: RouteStreamMaxLen, Approx: true,
		ID: "0-*", Values: []string{RouteField, marker},
	}).Result()
	if err != nil {
		return fmt.Errorf("bus: open route stream %s: %w", r.key, err)
	}
	seq, err := ParseRouteSeq(id)
	if err != nil {
		return fmt.Errorf("bus: open route stream %s: %w", r.key, err)
	}
	r.recent, r.recentBytes = r.recent[:0], 0
	r.remember(seq, marker)
	return nil
}

// remember records an entry read: it becomes the reader's place, and the
// oldest remembered entries beyond cfg.Keep or cfg.KeepBytes are forgotten.
func (r *RouteReader) remember(seq uint64, msg string) {
	r.last, r.lastMsg = seq, msg
	r.recent = append(r.recent, readEntry{seq, msg})
	r.recentBytes += len(msg)
	drop := 0
	for len(r.recent)-drop > 1 && (len(r.recent)-drop > r.cfg.Keep || r.recentBytes > r.cfg.KeepBytes) {
		r.recentBytes -= len(r.recent[drop].msg)
		drop++
	}
	if drop > 0 {
		clear(r.recent[:drop]) // let the messages go
		r.recent = r.recent[drop:]
	}
}

// Last returns the sequence number of the last entry read. While Run runs,
// call it only from its callbacks (or after them: Route is called after
// the entry's number is recorded).
func (r *RouteReader) Last() uint64 { return r.last }

// Run reads the stream until ctx ends. Call Open first.
func (r *RouteReader) Run(ctx context.Context) { RunRouteReaders(ctx, r) }

// RunRouteReaders runs readers of streams on one node (one Redis,
// Sentinel, or one slot of a Redis Cluster) together until ctx ends: one
// XREAD names every stream, so a gateway reading a route stream per
// partition waits on one command, not one per stream. Each reader keeps its
// own place, gaps, trimming and idle check (a reader that read nothing for
// its Block verifies its stream, as Run does alone); an outage is reported
// to every reader (Failed, Resumed). The entries of several streams that
// one read returns are handled concurrently (each stream's in order), so
// the callbacks of different readers may run at once, as they do when each
// reader runs alone. The readers share the first one's
// client, Count, Block and retry bounds. Call Open on each first.
func RunRouteReaders(ctx context.Context, readers ...*RouteReader) {
	if len(readers) == 0 {
		return
	}
	r0 := readers[0]
	n := len(readers)
	var (
		failedAt time.Time // zero while reads work
		retry    = r0.cfg.RetryMin
		dials    = r0.dials.Load()
		check    = make([]bool, n)      // verify the reader's stream before the next read
		trimmed  = make([]uint64, n)    // what each stream was trimmed to
		lastTrim = make([]time.Time, n) // when
		active   = make([]time.Time, n) // when each last read an entry, or was verified
		byKey    = make(map[string]int, n)
		streams  = make([]string, 2*n)
		from     = make([]uint64, n)
	)
	now := time.Now()
	for i, r := range readers {
		trimmed[i], lastTrim[i], active[i] = r.last, now, now
		byKey[r.key] = i
	}
	fail := func(err error) {
		if ctx.Err() != nil {
			return
		}
		if failedAt.IsZero() {
			failedAt = time.Now()
			for _, r := range readers {
				if r.cfg.Failed != nil {
					r.cfg.Failed(err)
				}
			}
		}
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		retry = min(2*retry, r0.cfg.RetryMax)
		for i := range check {
			check[i] = true
		}
	}
	// verify checks the readers marked, reporting whether all are placed.
	verify := func(which []bool) bool {
		for i, r := range readers {
			if !which[i] {
				continue
			}
			if err := r.verify(ctx); err != nil {
				fail(err)
				return false
			}
			which[i], active[i] = false, time.Now()
		}
		return true
	}
	for ctx.Err() == nil {
		if slices.Contains(check, true) {
			if !verify(check) {
				continue
			}
			dials = r0.dials.Load()
		}
		for i, r := range readers {
			from[i] = r.last
			streams[i], streams[n+i] = r.key, "0-"+strconv.FormatUint(r.last, 10)
		}
		res, err := r0.rdb.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: r0.cfg.Count, Block: r0.cfg.Block}).Result()
		if errors.Is(err, redis.Nil) {
			err = nil // idle: the readers idle for a Block are checked below
		}
		if err != nil {
			fail(err)
			continue
		}
		if !failedAt.IsZero() {
			outage := time.Since(failedAt)
			for _, r := range readers {
				if r.cfg.Resumed != nil {
					r.cfg.Resumed(outage)
				}
			}
			failedAt, retry = time.Time{}, r0.cfg.RetryMin
		}
		if d := r0.dials.Load(); d != dials {
			// The read may have gone to another Redis: use it only if the
			// streams there still hold the entries read last.
			all := make([]bool, n)
			for i := range all {
				all[i] = true
			}
			if !verify(all) {
				continue
			}
			dials = d
			moved := false
			for i, r := range readers {
				moved = moved || r.last != from[i]
			}
			if moved {
				continue // a gap moved a reader: read again from there
			}
		}
		now := time.Now()
		eachStream(res, func(s redis.XStream) {
			if i, ok := byKey[s.Stream]; ok {
				for _, e := range s.Messages {
					readers[i].entry(e)
				}
			}
		})
		for _, s := range res {
			if i, ok := byKey[s.Stream]; ok {
				active[i] = now
			}
		}
		for i, r := range readers {
			if now.Sub(active[i]) >= r.cfg.Block {
				check[i] = true // idle: make sure the stream is still there
			}
			if keep := r.recent[0].seq; keep > trimmed[i] && now.Sub(lastTrim[i]) >= r.cfg.TrimEvery {
				// Entries before the oldest remembered are done with; the
				// remembered ones stay (MINID keeps keep): the reader
				// checks its place against them.
				if r.rdb.XTrimMinIDApprox(ctx, r.key, "0-"+strconv.FormatUint(keep, 10), 0).Err() == nil {
					trimmed[i] = keep
				}
				lastTrim[i] = now
			}
		}
	}
}

// eachStream calls fn with each stream of an XREAD reply, on up to
// GOMAXPROCS goroutines at once when it holds several, and returns when all
// are done: readers running alone would handle their streams in parallel
// too, and a broadcast to thousands of members that reaches every
// partition's stream would otherwise be written out on one core.
func eachStream(res []redis.XStream, fn func(redis.XStream)) {
	workers := min(runtime.GOMAXPROCS(0), len(res))
	if workers <= 1 {
		for _, s := range res {
			fn(s)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for i := next.Add(1) - 1; i < int64(len(res)); i = next.Add(1) - 1 {
			fn(res[i])
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// entry handles one entry read: a gap before it, then its route.
func (r *RouteReader) entry(e redis.XMessage) {
	seq, err := ParseRouteSeq(e.ID)
	if err != nil {
		return // not written by a route writer; nothing to order it by
	}
	if seq <= r.last {
		return
	}
	if seq != r.last+1 && r.cfg.Gap != nil {
		r.cfg.Gap(Gap{Reason: GapTrimmed, After: r.last, Next: seq})
	}
	msg, _ := e.Values[RouteField].(string)
	r.remember(seq, msg)
	if !strings.HasPrefix(msg, openMarkerPrefix) && r.cfg.Route != nil {
		r.cfg.Route(msg)
	}
}

// verify checks, after a failed or idle read or one that dialed a new
// connection, that the stream still holds the reader's place: it exists
// (else Redis lost it), and it holds the entry read last, unchanged (else
// Redis restarted from older data, or a replica that lagged was promoted).
// Either is reported as a gap, once the stream is opened again: what is
// appended from then on is read.
func (r *RouteReader) verify(ctx context.Context) error {
	// The entry read last, unchanged, proves the place (one command, as
	// idle readers make this check every Block); else is the stream there?
	at := "0-" + strconv.FormatUint(r.last, 10)
	es, err := r.rdb.XRange(ctx, r.key, at, at).Result()
	if err != nil {
		return fmt.Errorf("bus: route stream %s: %w", r.key, err)
	}
	if len(es) == 1 {
		if msg, _ := es[0].Values[RouteField].(string); msg == r.lastMsg {
			return nil
		}
	}
	exists, err := r.rdb.Exists(ctx, r.key).Result()
	if err != nil {
		return fmt.Errorf("bus: route stream %s: %w", r.key, err)
	}
	reason := GapLost
	if exists == 1 {
		reason = GapRolledBack
		if ok, err := r.rewind(ctx); err != nil || ok {
			return err
		}
		if len(es) == 0 {
			// Gone: trimmed unread (the stream went on past it), or the
			// stream is behind it.
			info, err := r.rdb.XInfoStream(ctx, r.key).Result()
			if err != nil {
				return fmt.Errorf("bus: route stream %s: %w", r.key, err)
			}
			if top, err := ParseRouteSeq(info.LastGeneratedID); err == nil && top >= r.last {
				reason = GapTrimmed
			}
		}
	}
	before := r.last
	if err := r.Open(ctx); err != nil {
		return err
	}
	if r.cfg.Gap != nil {
		r.cfg.Gap(Gap{Reason: reason, After: before, Next: r.last})
	}
	return nil
}

// rewind handles a stream that no longer holds the entry read last as it
// was read: it looks for the newest remembered entry the stream still holds
// unchanged and, if there is one, goes back to it and reports a Rewound
// GapRolledBack with the routes read after it. It reports whether it did.
func (r *RouteReader) rewind(ctx context.Context) (bool, error) {
	from, to := r.recent[0].seq, r.last
	es, err := r.rdb.XRangeN(ctx, r.key, "0-"+strconv.FormatUint(from, 10), "0-"+strconv.FormatUint(to, 10), int64(len(r.recent))).Result()
	if err != nil {
		return false, fmt.Errorf("bus: route stream %s: %w", r.key, err)
	}
	held := make(map[uint64]string, len(es))
	for _, e := range es {
		if seq, err := ParseRouteSeq(e.ID); err == nil {
			held[seq], _ = e.Values[RouteField].(string)
		}
	}
	for i := len(r.recent) - 1; i >= 0; i-- {
		e := r.recent[i]
		if msg, ok := held[e.seq]; !ok || msg != e.msg {
			continue
		}
		var lost []string
		for _, l := range r.recent[i+1:] {
			if !strings.HasPrefix(l.msg, openMarkerPrefix) {
				lost = append(lost, l.msg)
			}
		}
		before := r.last
		for _, l := range r.recent[i+1:] {
			r.recentBytes -= len(l.msg)
		}
		clear(r.recent[i+1:])
		r.recent = r.recent[:i+1]
		r.last, r.lastMsg = e.seq, e.msg
		if r.cfg.Gap != nil {
			r.cfg.Gap(Gap{Reason: GapRolledBack, After: e.seq, Next: before, Rewound: true, Lost: lost})
		}
		return true, nil
	}
	return false, nil
}
