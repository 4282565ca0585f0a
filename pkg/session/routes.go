package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// Route table: a session script that sends route messages declares the
// route streams it may append to, and the streams sets it may change, as
// KEYS (docs/redis.md, "Declared keys"), so no script builds a gateway's key
// name from data. The caller cannot know which gateways a script will name
// (the holder of a session's stream or parked poll is data), so it declares
// those of every gateway it knows of: the cluster's gateways set
// (bus.Keys.Gateways), read into the Store's route table. A script checks
// first that the table covers every gateway its partition's sessions may
// name (bus.Keys.RouteGateways, which a gateway joins only
// RouteJoinWaits × Config.RouteRefresh after it joined the gateways set),
// and otherwise writes nothing and answers routeStaleReply: run reads the
// table again and runs the script again.

// DefaultRouteRefresh is Config.RouteRefresh's default.
const DefaultRouteRefresh = time.Second

// RouteJoinWaits is how many Config.RouteRefresh intervals a gateway new to
// the cluster waits, between joining the gateways set and joining the
// partitions' routing sets (Store.Alive): every gateway refreshing its route
// table each interval then knows of it before any session can name it, so
// the scripts of their commit batches (which cannot be run again alone)
// never find their table stale.
const RouteJoinWaits = 3

// routeAttempts is how many times run runs a script whose table was stale.
const routeAttempts = 3

// routeStaleReply is the error a session script that routes answers,
// having written nothing, when its caller's route table misses a gateway
// (lua/lib.lua's routes_stale).
const routeStaleReply = "ROUTESTALE the caller's route table misses a gateway the partition's sessions may name"

// notRoutedReply is the error a script that makes a session name its
// caller (open.lua, poll.lua) answers, having written nothing, when the
// caller is not in the partition's routing set (lua/lib.lua's
// node_routed): Redis lost the set, or the reapers forgot the caller.
const notRoutedReply = "NOTROUTED the caller is not in the partition's routing set"

// ErrRouteTableStale is what a script answers, having written nothing, when
// the store's route table misses a gateway its partition's sessions may name:
// after routeAttempts refreshes for a script the store runs, and for a
// script of a commit batch (EndWrite, DeliverWrite, JoinWrite, LeaveWrite),
// whose batch then fails. Test with IsRouteTableStale, as Redis answers it.
var ErrRouteTableStale = errors.New("session: the route table misses a gateway")

// IsRouteTableStale reports whether err is, or wraps, a script's answer
// that the route table it was given misses a gateway (ErrRouteTableStale).
func IsRouteTableStale(err error) bool {
	return errors.Is(err, ErrRouteTableStale) || isReply(err, routeStaleReply)
}

// isReply reports whether err is Redis's error reply whose first word is
// reply's.
func isReply(err error, reply string) bool {
	var re redis.Error
	word, _, _ := strings.Cut(reply, " ")
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), word+" ")
}

// A routeTable is what a Store knows of the cluster's gateways.
type routeTable struct {
	arg  string     // the node ids, sorted, joined by "\n": a script's ARGV[1]
	keys [][]string // per partition, its shared keys (lua/lib.lua's partition_keys)
	at   time.Time  // when it was read (zero: never)
}

// routes holds a Store's route table.
type routes struct {
	table atomic.Pointer[routeTable]
	read  chan struct{} // holds a token while a refresh reads (one at a time; New makes it, buffer 1)
	soon  atomic.Bool   // a refreshSoon is under way
}

// routeTable returns the store's current route table: before the first
// read, one of no gateway (whose scripts answer that it is stale as soon as
// a partition has a routing member).
func (s *Store) routeTable() *routeTable {
	if t := s.routes.table.Load(); t != nil {
		return t
	}
	return newRouteTable(s.cfg.Keys, nil, time.Time{})
}

// newRouteTable returns the route table of gateways nodes (sorted), read
// at at.
func newRouteTable(k bus.Keys, nodes []string, at time.Time) *routeTable {
	t := &routeTable{arg: strings.Join(nodes, "\n"), keys: make([][]string, k.Partitions()), at: at}
	for p := range t.keys {
		keys := make([]string, 0, 5+2*len(nodes))
		keys = append(keys, k.StreamHolders(p), k.RouteGateways(p), k.Members(p), k.PollingMembers(p), k.RoomIndex(p))
		for _, n := range nodes {
			keys = append(keys, k.RouteStream(p, n), k.GatewayStreams(p, n))
		}
		t.keys[p] = keys
	}
	return t
}

// RefreshRoutes reads the cluster's gateways into the store's route table.
// A gateway calls it every Config.RouteRefresh; the scripts a Store runs
// itself refresh it when it is older than that, or stale.
func (s *Store) RefreshRoutes(ctx context.Context) error {
	return s.refreshRoutes(ctx, time.Now())
}

// refreshRoutes reads the table unless one read at or after since is there
// (another caller's refresh, waited for as long as ctx lasts: a read that
// Redis stalls holds the others).
func (s *Store) refreshRoutes(ctx context.Context, since time.Time) error {
	select {
	case s.routes.read <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("session: read the route table: %w", ctx.Err())
	}
	defer func() { <-s.routes.read }()
	if t := s.routes.table.Load(); t != nil && !t.at.Before(since) {
		return nil
	}
	start := time.Now()
	nodes, err := s.rdb.SMembers(ctx, s.cfg.Keys.Gateways()).Result()
	if err != nil {
		return fmt.Errorf("session: read the route table: %w", err)
	}
	slices.Sort(nodes)
	s.routes.table.Store(newRouteTable(s.cfg.Keys, nodes, start))
	return nil
}

// withRoutes returns keys followed by the shared keys of t of each
// partition of parts, in order, and sets args[0] (ARGV[1]) to t's
// gateways.
func withRoutes(t *routeTable, parts []int, keys []string, args []any) []string {
	args[0] = t.arg
	out := slices.Clip(keys)
	for _, p := range parts {
		out = append(out, t.keys[p]...)
	}
	return out
}

// run runs sc on partition p: runIn for p alone.
func (s *Store) run(ctx context.Context, sc *script, p int, keys []string, args ...any) *redis.Cmd {
	return s.runIn(ctx, sc, []int{p}, keys, args...)
}

// runIn runs sc with keys and args (Store.args: runIn fills ARGV[1]). A
// script that routes gets the shared keys of each partition of parts after
// keys (commit_node.lua takes several), from a table read first when older than two
// Config.RouteRefresh intervals (in the background when older than one),
// and runs again, routeAttempts times in all, with a
// table read anew when it answers that the table is stale, and after this
// node joined the routing sets again when it answers that the node is not
// in them (Redis lost the sets, or the reapers forgot the node: it waits
// as a new node does, rejoinRouting).
func (s *Store) runIn(ctx context.Context, sc *script, parts []int, keys []string, args ...any) *redis.Cmd {
	if !sc.routes {
		return sc.Run(ctx, s.rdb, keys, args...)
	}
	// A table older than an interval is read again in the background (a
	// gateway's loop keeps its own younger); one older than two, as a
	// batch would refuse it, is read first.
	age := time.Since(s.routeTable().at)
	refresh := age > 2*s.cfg.RouteRefresh
	if !refresh && age > s.cfg.RouteRefresh {
		s.refreshSoon()
	}
	for attempt := 1; ; attempt++ {
		if refresh {
			// On an error, run with the table there is: the script
			// says whether it is stale.
			_ = s.refreshRoutes(ctx, time.Now())
		}
		cmd := sc.Run(ctx, s.rdb, withRoutes(s.routeTable(), parts, keys, args), args...)
		err := cmd.Err()
		if attempt == routeAttempts {
			return cmd
		}
		switch {
		case IsRouteTableStale(err):
			refresh = true
		case isReply(err, notRoutedReply):
			if jerr := s.rejoinRouting(ctx); jerr != nil {
				return cmd
			}
			refresh = true
		default:
			return cmd
		}
	}
}

// write returns sc with keys and args as a step of a commit batch, with
// partition p's shared keys of the table the store has when the batch is
// written (a gateway refreshes it every Config.RouteRefresh). A batch
// cannot be run again in part, so a script that routes must not find its
// table stale there: while the table is older than two refresh intervals
// (its last reads failed), the step keeps the whole batch from being sent
// (bus.ErrRetryBatch: the committer tries it again) and asks for a
// refresh. A younger table lists every gateway of a routing set, as a
// gateway joins those RouteJoinWaits intervals after it could be read
// (Alive); the script's own check (ROUTESTALE, ErrRouteTableStale) remains
// for a batch that waited longer than an interval between being written
// and run.
func (s *Store) write(sc *script, p int, keys []string, args ...any) bus.Write {
	return func(pipe redis.Pipeliner) error {
		a := slices.Clone(args)
		k := keys
		if sc.routes {
			t := s.routeTable()
			if time.Since(t.at) > 2*s.cfg.RouteRefresh {
				s.refreshSoon()
				return fmt.Errorf("%w: the route table was read %v ago", bus.ErrRetryBatch, time.Since(t.at).Round(time.Millisecond))
			}
			k = withRoutes(t, []int{p}, keys, a)
		}
		sc.Eval(context.Background(), pipe, k, a...)
		return nil
	}
}

// refreshSoon reads the route table in the background, unless a read asked
// for this way is under way.
func (s *Store) refreshSoon() {
	if !s.routes.soon.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.routes.soon.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.refreshRoutes(ctx, time.Now())
	}()
}
