package session

import (
	"context"
	"fmt"
	"github.com/redis/go-redis/v9"
	"time"
)

// Alive marks this node as a live gateway for ttl. Gateways call it
// periodically (well within ttl); when the key expires, other gateways reap
// the node's streaming sessions with reason "gateway_lost".
func (s *Store) Alive(ctx context.Context, ttl time.Duration) error {
	k := s.cfg.Keys
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.SAdd(ctx, k.Gateways(), s.cfg.Node)
		pipe.Set(ctx, k.GatewayAlive(s.cfg.Node), time.Now().UnixMilli(), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("session: alive: %w", err)
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
	connected := pipe.SCard(ctx, k.NamespaceSessions(""))
	polling := pipe.SCard(ctx, k.NamespacePolling(""))
	deadlines := pipe.ZCard(ctx, k.Deadlines()) // handshaken and polling sessions
	if _, err := pipe.Exec(ctx); err != nil {
		return SessionCounts{}, fmt.Errorf("session: counts: %w", err)
	}
	return SessionCounts{
		Handshaken: max(0, deadlines.Val()-polling.Val()),
		Polling:    polling.Val(),
		Streaming:  max(0, connected.Val()-polling.Val()),
	}, nil
}

// ReapDeadlines ends up to limit sessions whose deadline has passed (reason
// "timeout") and returns how many it ended.
func (s *Store) ReapDeadlines(ctx context.Context, limit int) (int, error) {
	res, err := reapDeadlinesScript.Run(ctx, s.rdb, []string{s.cfg.Keys.Deadlines()}, s.args(limit)...).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("session: reap deadlines: %w", err)
	}
	return int(res[1]), nil
}

// ReapGateways ends the streaming sessions of every gateway whose liveness
// key expired (reason "gateway_lost"), up to limit sessions per gateway per
// call, and returns how many it ended.
func (s *Store) ReapGateways(ctx context.Context, limit int) (int, error) {
	k := s.cfg.Keys
	nodes, err := s.rdb.SMembers(ctx, k.Gateways()).Result()
	if err != nil {
		return 0, fmt.Errorf("session: list gateways: %w", err)
	}
	total := 0
	for _, node := range nodes {
		if node == s.cfg.Node {
			continue
		}
		n, err := reapGatewayScript.Run(ctx, s.rdb,
			[]string{k.Deadlines(), k.GatewayAlive(node), k.GatewayStreams(node), k.Gateways()}, s.args(node, limit)...).Int()
		if err != nil {
			return total, fmt.Errorf("session: reap gateway %s: %w", node, err)
		}
		if n > 0 {
			total += n
		}
	}
	return total, nil
}
