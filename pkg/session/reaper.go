package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// Alive marks this node as a live gateway for ttl. Gateways call it at
// start, before they serve, then Renew it well within ttl; when the key
// expires, other gateways reap the node's streaming sessions with reason
// "gateway_lost".
//
// The node joins the cluster's gateways set (bus.Keys.Gateways), with its
// liveness key, and then the partitions' routing sets
// (bus.Keys.RouteGateways). A node not in every routing set already waits
// RouteJoinWaits × Config.RouteRefresh between the two, renewing its key
// meanwhile: by then every gateway's route table lists it
// (RefreshRoutes), so no commit batch of theirs finds its table stale once
// sessions can name this node. It returns ctx's error if ctx ends during
// the wait. (A gateway that must join the routing sets again, because
// Redis lost them or the reapers forgot it, waits the same: Store.run.)
func (s *Store) Alive(ctx context.Context, ttl time.Duration) error {
	routed, err := s.inRouting(ctx)
	if err != nil {
		return fmt.Errorf("session: alive: %w", err)
	}
	if _, err := s.Renew(ctx, ttl); err != nil {
		return err
	}
	if !routed {
		if err := s.waitRouteJoin(ctx, func() error { _, err := s.Renew(ctx, ttl); return err }, ttl/4); err != nil {
			return err
		}
	}
	return s.joinRouting(ctx)
}

func (s *Store) routeJoinWait() time.Duration { return RouteJoinWaits * s.cfg.RouteRefresh }

// inRouting reports whether this node is in every partition's routing set
// already (a restart in place): joining them then shows it to no script
// anew, so it need not wait.
func (s *Store) inRouting(ctx context.Context) (bool, error) {
	cmds := make([]*redis.BoolCmd, s.cfg.Keys.Partitions())
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range cmds {
			cmds[p] = pipe.SIsMember(ctx, s.cfg.Keys.RouteGateways(p), s.cfg.Node)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, c := range cmds {
		if !c.Val() {
			return false, nil
		}
	}
	return true, nil
}

// waitRouteJoin waits routeJoinWait, calling renew every (at most) every
// meanwhile; it returns renew's error, or ctx's.
func (s *Store) waitRouteJoin(ctx context.Context, renew func() error, every time.Duration) error {
	deadline := time.Now().Add(s.routeJoinWait())
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(left, every))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("session: waiting for the route tables: %w", ctx.Err())
		}
		if err := renew(); err != nil {
			return err
		}
	}
}

// rejoinRouting makes this node, which a script found missing from its
// partition's routing set, join the gateways set at once and the routing
// sets RouteJoinWaits × Config.RouteRefresh later (as Alive); concurrent
// callers wait for the same rejoin, each until its ctx ends.
func (s *Store) rejoinRouting(ctx context.Context) error {
	s.rejoin.mu.Lock()
	r := s.rejoin.current
	if r == nil {
		r = &rejoin{done: make(chan struct{})}
		s.rejoin.current = r
		go func() {
			bg, cancel := context.WithTimeout(context.Background(), s.routeJoinWait()+10*time.Second)
			defer cancel()
			r.err = s.rdb.SAdd(bg, s.cfg.Keys.Gateways(), s.cfg.Node).Err()
			if r.err == nil {
				r.err = s.waitRouteJoin(bg, func() error { return nil }, s.routeJoinWait())
			}
			if r.err == nil {
				r.err = s.joinRouting(bg)
			}
			s.rejoin.mu.Lock()
			s.rejoin.current = nil
			s.rejoin.mu.Unlock()
			close(r.done)
		}()
	}
	s.rejoin.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A rejoin is one run of rejoinRouting; err is set before done closes.
type rejoin struct {
	done chan struct{}
	err  error
}

// joinRouting adds this node to the gateways set and every partition's
// routing set, at once: its callers waited (Alive, rejoinRouting).
func (s *Store) joinRouting(ctx context.Context) error {
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.SAdd(ctx, s.cfg.Keys.Gateways(), s.cfg.Node)
		for p := range s.cfg.Keys.Partitions() {
			pipe.SAdd(ctx, s.cfg.Keys.RouteGateways(p), s.cfg.Node)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("session: join the routing sets: %w", err)
	}
	return nil
}

// Renew renews the node's liveness key for ttl and its place in the
// gateways set, and returns how long the key had left before (0 when it
// had expired or was missing): a gateway renewing every ttl/4 sees about
// 3/4 of ttl, and less after Redis or the gateway itself stalled. (A node
// the reapers forgot, taking it for dead, is back in the gateways set at
// once; it joins the routing sets when its next open or poll finds it
// missing there, after the join wait: Store.run.)
func (s *Store) Renew(ctx context.Context, ttl time.Duration) (time.Duration, error) {
	k := s.cfg.Keys
	var left *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		left = pipe.PTTL(ctx, k.GatewayAlive(s.cfg.Node))
		pipe.Set(ctx, k.GatewayAlive(s.cfg.Node), time.Now().UnixMilli(), ttl)
		pipe.SAdd(ctx, k.Gateways(), s.cfg.Node)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("session: alive: %w", err)
	}
	return max(0, left.Val()), nil
}

// ProbeAlive writes this node's liveness key without extending its
// lifetime (SET XX KEEPTTL), which Redis refuses while it refuses writes
// (out of memory, a read-only replica): readiness checks prove writes
// with it. Only the liveness loop renews the key, so that how long it has
// left tells that loop's renewals apart from a stall (see ReapGateways).
func (s *Store) ProbeAlive(ctx context.Context) error {
	err := s.rdb.SetArgs(ctx, s.cfg.Keys.GatewayAlive(s.cfg.Node), time.Now().UnixMilli(),
		redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("session: probe alive: %w", err)
	}
	return nil
}

// Leave removes this node's liveness key, so that its remaining streaming
// sessions are reaped at once by the other gateways (used after a drain).
func (s *Store) Leave(ctx context.Context) error {
	if err := s.rdb.Del(ctx, s.cfg.Keys.GatewayAlive(s.cfg.Node)).Err(); err != nil {
		return fmt.Errorf("session: leave: %w", err)
	}
	return nil
}

// SessionCounts are the cluster's sessions by state.
type SessionCounts struct {
	Handshaken int64 // handshake done, no transport connected yet
	Polling    int64 // connected over xhr-polling or jsonp-polling
	Streaming  int64 // connected over websocket, flashsocket or htmlfile
}

// Counts returns how many sessions the cluster has in each state (from
// the indexes, read together; a gauge, not an exact census).
func (s *Store) Counts(ctx context.Context) (SessionCounts, error) {
	k := s.cfg.Keys
	pipe := s.rdb.Pipeline()
	var connected, polling, deadlines []*redis.IntCmd
	lo, hi := bus.MemberRange("", "")
	for p := range k.Partitions() {
		connected = append(connected, pipe.ZLexCount(ctx, k.Members(p), lo, hi))
		polling = append(polling, pipe.ZLexCount(ctx, k.PollingMembers(p), lo, hi))
		deadlines = append(deadlines, pipe.ZCard(ctx, k.Deadlines(p))) // handshaken and polling sessions
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return SessionCounts{}, fmt.Errorf("session: counts: %w", err)
	}
	sum := func(cmds []*redis.IntCmd) (n int64) {
		for _, c := range cmds {
			n += c.Val()
		}
		return n
	}
	return SessionCounts{
		Handshaken: max(0, sum(deadlines)-sum(polling)),
		Polling:    sum(polling),
		Streaming:  max(0, sum(connected)-sum(polling)),
	}, nil
}

// Reaped is what ReapDeadlines ended, by reason.
type Reaped struct {
	Timeout  int // reason timeout: the deadline passed
	Overflow int // reason overflow: a commit marked it, and its end failed (endOverflowed)
}

// Total returns the number of sessions ended.
func (r Reaped) Total() int { return r.Timeout + r.Overflow }

// ReapDeadlines ends up to limit sessions per partition whose deadline has
// passed (reason "timeout", or "overflow" for a session a commit marked so
// and whose end failed: endOverflowed) and returns how many it ended.
//
// The sessions due are read first, partition after partition, and
// reap_deadlines.lua runs only on partitions with some, declaring them
// (it ends each one whose deadline is still past).
func (s *Store) ReapDeadlines(ctx context.Context, limit int) (Reaped, error) {
	k := s.cfg.Keys
	var total Reaped
	for p := range k.Partitions() {
		now := strconv.FormatInt(time.Now().UnixMilli(), 10)
		due, err := s.rdb.ZRangeByScore(ctx, k.Deadlines(p), &redis.ZRangeBy{Min: "-inf", Max: now, Count: int64(limit)}).Result()
		if err != nil {
			return total, fmt.Errorf("session: reap deadlines: %w", err)
		}
		if len(due) == 0 {
			continue
		}
		call := &scriptCall{script: reapDeadlinesScript, parts: []int{p}, keys: []string{k.Deadlines(p)},
			args: s.args(""), decl: fullDeclaration(due)}
		s.evalAll(ctx, []*scriptCall{call})
		res, err := call.cmd.Int64Slice()
		if err != nil {
			return total, fmt.Errorf("session: reap deadlines: %w", err)
		}
		if len(res) != 3 {
			return total, fmt.Errorf("session: reap deadlines: reply %v", res)
		}
		total.Timeout += int(res[1] - res[2])
		total.Overflow += int(res[2])
	}
	return total, nil
}

// ReapGateways ends the streaming sessions of every other gateway whose
// liveness key expired (reason "gateway_lost"), up to limit sessions per
// gateway per call, and returns how many it ended.
//
// minLeft guards against reaping gateways that are alive but could not
// renew their keys because Redis stalled: each gateway's sessions are
// ended only if this node's own liveness key, renewed just before the
// call, still has minLeft to live when the script runs (so no stall as
// long as minLeft came between them: a Redis pause long enough to let a
// live gateway's key expire lets this node's key run down too). With
// minLeft > 0 and less left, nothing is ended and ErrStalled is returned.
// minLeft <= 0: no such guard.
func (s *Store) ReapGateways(ctx context.Context, limit int, minLeft time.Duration) (int, error) {
	nodes, err := s.rdb.SMembers(ctx, s.cfg.Keys.Gateways()).Result()
	if err != nil {
		return 0, fmt.Errorf("session: list gateways: %w", err)
	}
	return s.ReapGatewaysOf(ctx, nodes, limit, minLeft)
}

// ExpiredGateways returns the gateways of the cluster's set, this node
// excepted, whose liveness keys are gone now (a gateway that stopped
// renewing it, or lost it in a failover of Redis).
func (s *Store) ExpiredGateways(ctx context.Context) ([]string, error) {
	k := s.cfg.Keys
	nodes, err := s.rdb.SMembers(ctx, k.Gateways()).Result()
	if err != nil {
		return nil, fmt.Errorf("session: list gateways: %w", err)
	}
	nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == s.cfg.Node })
	if len(nodes) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.IntCmd, len(nodes))
	pipe := s.rdb.Pipeline()
	for i, n := range nodes {
		cmds[i] = pipe.Exists(ctx, k.GatewayAlive(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("session: gateways' liveness: %w", err)
	}
	var expired []string
	for i, n := range nodes {
		if cmds[i].Val() == 0 {
			expired = append(expired, n)
		}
	}
	return expired, nil
}

// ReapGatewaysOf is ReapGateways for the gateways nodes only (each one's
// key is checked again, atomically, by its reap).
func (s *Store) ReapGatewaysOf(ctx context.Context, nodes []string, limit int, minLeft time.Duration) (int, error) {
	guard := int64(-1)
	if minLeft > 0 {
		guard = minLeft.Milliseconds()
	}
	total := 0
	for _, node := range nodes {
		if node == s.cfg.Node {
			continue
		}
		n, err := s.reapGateway(ctx, node, limit, guard)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// EndOwnStreams ends every streaming session this node's streams set
// still lists (reason "gateway_lost") and returns how many: a gateway
// calls it when it starts, before it holds any stream, for the sessions of
// a previous run under the same node id (killed, or crashed), which its
// liveness key, renewed again, would otherwise keep from being reaped.
func (s *Store) EndOwnStreams(ctx context.Context) (int, error) {
	const limit = 500
	total := 0
	for {
		n, err := s.reapGateway(ctx, s.cfg.Node, limit, reapOwn)
		total += n
		if err != nil {
			return total, err
		}
		left, err := s.count(ctx, func(p int) string { return s.cfg.Keys.GatewayStreams(p, s.cfg.Node) })
		if err != nil {
			return total, fmt.Errorf("session: end own streams: %w", err)
		}
		if left == 0 {
			return total, nil
		}
	}
}

// reapOwn is reapGateway's guard for EndOwnStreams: end the node's
// sessions whatever the liveness keys say.
const reapOwn = -2

// reapGateway ends the streaming sessions of node in each partition, up to
// limit each (reap_gateway.lua, which touches the partition's keys only),
// then forgets a dead node that holds no stream any more. Before each
// partition it checks, in one round trip, that the node's liveness key is
// gone (else the node is alive: nothing more is done) and, with guard >=
// 0, that this node's own key still has guard ms to live (else Redis
// stalled: ErrStalled); reapOwn skips both checks. The checks are not
// atomic with the script, which keeps it on the partition's hash slot
// while the liveness keys are the cluster's: a node reviving in that
// round trip may lose the sessions of one partition, as a node presumed
// dead does.
func (s *Store) reapGateway(ctx context.Context, node string, limit int, guard int64) (int, error) {
	k := s.cfg.Keys
	total, left := 0, int64(0)
	for p := range k.Partitions() {
		if guard != reapOwn {
			alive, err := s.checkReap(ctx, node, guard)
			if err != nil || alive {
				return total, err
			}
		}
		sids, err := s.rdb.SRandMemberN(ctx, k.GatewayStreams(p, node), int64(limit)).Result()
		if err != nil {
			return total, fmt.Errorf("session: reap gateway %s: %w", node, err)
		}
		call := &scriptCall{script: reapGatewayScript, parts: []int{p}, keys: []string{k.Deadlines(p), k.GatewayStreams(p, node)},
			args: s.args("", node), decl: fullDeclaration(sids)}
		s.evalAll(ctx, []*scriptCall{call})
		res, err := call.cmd.Int64Slice()
		if err != nil {
			return total, fmt.Errorf("session: reap gateway %s: %w", node, err)
		}
		total += int(res[0])
		left += res[1]
	}
	if guard == reapOwn || left > 0 {
		return total, nil
	}
	// Forget the node: it leaves the routing sets and its route streams
	// are deleted, then, once that is done, it leaves the gateways set (so
	// a forget cut short leaves it where the reapers look again, never a
	// routing member no route table lists). A gateway that comes back
	// finds its streams gone, a gap its readers report; it is back in the
	// gateways set at its next renewal, and in the routing sets when its
	// next open or poll finds it missing there (Store.run).
	if alive, err := s.checkReap(ctx, node, -1); err != nil || alive {
		return total, err
	}
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range k.Partitions() {
			pipe.SRem(ctx, k.RouteGateways(p), node)
			pipe.Del(ctx, k.RouteStream(p, node))
		}
		return nil
	})
	if err == nil {
		err = s.rdb.SRem(ctx, k.Gateways(), node).Err()
	}
	if err != nil {
		return total, fmt.Errorf("session: forget gateway %s: %w", node, err)
	}
	return total, nil
}

// checkReap reports whether node's liveness key exists, and returns
// ErrStalled when guard >= 0 and this node's own key has less than guard
// ms to live.
func (s *Store) checkReap(ctx context.Context, node string, guard int64) (alive bool, err error) {
	k := s.cfg.Keys
	var exists *redis.IntCmd
	var own *redis.DurationCmd
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		exists = pipe.Exists(ctx, k.GatewayAlive(node))
		if guard >= 0 {
			own = pipe.PTTL(ctx, k.GatewayAlive(s.cfg.Node))
		}
		return nil
	})
	switch {
	case err != nil:
		return false, fmt.Errorf("session: reap gateway %s: %w", node, err)
	case exists.Val() > 0:
		return true, nil
	case own != nil && own.Val().Milliseconds() < guard:
		return false, ErrStalled
	}
	return false, nil
}
