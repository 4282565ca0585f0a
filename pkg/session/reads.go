package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// The reads below serve workers and emitters (pkg/worker), which see
// sessions only through a Store.

// Handshake returns what session sid kept of its handshake request. It
// returns ErrUnknownSession when the session is gone.
func (s *Store) Handshake(ctx context.Context, sid string) (Handshake, error) {
	var hs Handshake
	raw, err := s.rdb.HGet(ctx, s.cfg.Keys.Session(sid), "hs").Result()
	if errors.Is(err, redis.Nil) {
		return hs, ErrUnknownSession
	}
	if err != nil {
		return hs, fmt.Errorf("session: handshake: %w", err)
	}
	if err := json.Unmarshal([]byte(raw), &hs); err != nil {
		return hs, fmt.Errorf("session: handshake: %w", err)
	}
	return hs, nil
}

// Identity is what a session kept of who its client is: the handshake
// and the authorization hook's data (JSON, "" when none).
type Identity struct {
	Handshake Handshake
	AuthData  string
}

// Identities returns the Identity of each session of sids in one round
// trip; a session that is gone is absent from the map.
func (s *Store) Identities(ctx context.Context, sids []string) (map[string]Identity, error) {
	cmds := make([]*redis.SliceCmd, len(sids))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, sid := range sids {
			cmds[i] = pipe.HMGet(ctx, s.cfg.Keys.Session(sid), "hs", "ad")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session: identities: %w", err)
	}
	out := make(map[string]Identity, len(sids))
	for i, sid := range sids {
		vals := cmds[i].Val()
		raw, ok := vals[0].(string)
		if !ok {
			continue // gone
		}
		var id Identity
		if err := json.Unmarshal([]byte(raw), &id.Handshake); err != nil {
			return nil, fmt.Errorf("session: handshake of %s: %w", sid, err)
		}
		id.AuthData, _ = vals[1].(string)
		out[sid] = id
	}
	return out, nil
}

// AuthData returns the data the authorization hook kept with session sid
// (JSON, "" when none). It returns ErrUnknownSession when the session is
// gone.
func (s *Store) AuthData(ctx context.Context, sid string) (string, error) {
	raw, err := s.rdb.HGet(ctx, s.cfg.Keys.Session(sid), "ad").Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrUnknownSession
	}
	if err != nil {
		return "", fmt.Errorf("session: auth data: %w", err)
	}
	return raw, nil
}

// Rooms returns the rooms session sid is in, in namespace ns.
func (s *Store) Rooms(ctx context.Context, sid, ns string) ([]string, error) {
	all, err := s.rdb.SMembers(ctx, s.cfg.Keys.SessionRooms(sid)).Result()
	if err != nil {
		return nil, fmt.Errorf("session: rooms: %w", err)
	}
	prefix := bus.RoomMember(ns, "")
	var out []string
	for _, r := range all {
		if room, ok := strings.CutPrefix(r, prefix); ok {
			out = append(out, room)
		}
	}
	return out, nil
}

// RoomCount returns how many rooms session sid is in, over all its
// namespaces, and whether room of namespace ns is one of them (a join of
// it adds nothing).
func (s *Store) RoomCount(ctx context.Context, sid, ns, room string) (n int, member bool, err error) {
	key := s.cfg.Keys.SessionRooms(sid)
	var card *redis.IntCmd
	var in *redis.BoolCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.SCard(ctx, key)
		in = p.SIsMember(ctx, key, bus.RoomMember(ns, room))
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("session: room count: %w", err)
	}
	return int(card.Val()), in.Val(), nil
}

// Sessions iterates over the ids of the sessions connected to namespace ns
// across the cluster, partition after partition, with a cursor (SSCAN, 500
// at a time), never one giant read. An id may appear twice if a set
// changes during the scan, as SSCAN allows.
func (s *Store) Sessions(ctx context.Context, ns string) iter.Seq2[string, error] {
	return s.scan(ctx, func(p int) string { return s.cfg.Keys.NamespaceSessions(p, ns) })
}

// RoomSessions iterates over the ids of the sessions in room of namespace
// ns, as Sessions does.
func (s *Store) RoomSessions(ctx context.Context, ns, room string) iter.Seq2[string, error] {
	return s.scan(ctx, func(p int) string { return s.cfg.Keys.RoomSessions(p, ns, room) })
}

// InNamespace reports whether session sid is connected to namespace ns
// ("" default): false for a session that is gone.
func (s *Store) InNamespace(ctx context.Context, sid, ns string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.cfg.Keys.SessionNamespaces(sid), ns).Result()
	if err != nil {
		return false, fmt.Errorf("session: in namespace: %w", err)
	}
	return ok, nil
}

// SessionsPage returns one page of the ids of the sessions connected to
// namespace ns (room "") or in room of ns, with SSCAN over each
// partition's set in turn (going on to the next partition while the page
// holds fewer than count ids): start with cursor 0, pass the returned next
// cursor for the next page, stop when it is 0. The cursor holds the
// partition in its top 8 bits (bus.MaxPartitions) and SSCAN's cursor in
// the others; ErrBadCursor for one no page returned. count is a hint of
// the page's size (SSCAN's COUNT: a small set comes whole, a page may be
// empty before the last). An id may appear twice if the sets change
// between pages, as SSCAN allows.
func (s *Store) SessionsPage(ctx context.Context, ns, room string, cursor uint64, count int64) (ids []string, next uint64, err error) {
	k := s.cfg.Keys
	p, c := int(cursor>>pageShift), cursor&(1<<pageShift-1)
	if p >= k.Partitions() {
		return nil, 0, fmt.Errorf("session: list sessions: %w", ErrBadCursor)
	}
	for {
		key := k.NamespaceSessions(p, ns)
		if room != "" {
			key = k.RoomSessions(p, ns, room)
		}
		page, nc, err := s.rdb.SScan(ctx, key, c, "", count).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("session: list sessions: %w", err)
		}
		ids = append(ids, page...)
		switch {
		case nc >= 1<<pageShift:
			return nil, 0, fmt.Errorf("session: list sessions: SSCAN cursor %d too large", nc)
		case nc != 0:
			return ids, uint64(p)<<pageShift | nc, nil
		case p+1 == k.Partitions():
			return ids, 0, nil
		case int64(len(ids)) >= count:
			return ids, uint64(p+1) << pageShift, nil
		}
		p, c = p+1, 0
	}
}

// pageShift places the partition in a SessionsPage cursor.
const pageShift = 56

// ErrBadCursor is returned for a page cursor that no page returned.
var ErrBadCursor = errors.New("session: bad page cursor")

// RoomsPage returns one page of the names of the rooms of namespace ns that
// have members, with SCAN over the keyspace (MATCH Keys.RoomSessionsMatch,
// TYPE set; on a Redis Cluster, each primary's in turn, the cursor holding
// the primary's rank in its top 8 bits): start with cursor 0, pass the
// returned next cursor, stop when it is 0; ErrBadCursor for one no page
// returned. count is SCAN's COUNT, the keys looked at per page (of the whole
// keyspace, so pages are often empty before the last); a full listing
// costs a pass over every key. A room has a set in each partition where it
// has members; it is listed for the first of them only (one EXISTS per
// lower partition, pipelined), so it appears once unless keys change
// between pages.
func (s *Store) RoomsPage(ctx context.Context, ns string, cursor uint64, count int64) (rooms []string, next uint64, err error) {
	k := s.cfg.Keys
	nodes, err := s.scanNodes(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("session: list rooms: %w", err)
	}
	i, c := int(cursor>>pageShift), cursor&(1<<pageShift-1)
	if i >= len(nodes) {
		return nil, 0, fmt.Errorf("session: list rooms: %w", ErrBadCursor)
	}
	keys, c, err := nodes[i].ScanType(ctx, c, k.RoomSessionsMatch(ns), count, "set").Result()
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("session: list rooms: %w", err)
	case c >= 1<<pageShift:
		return nil, 0, fmt.Errorf("session: list rooms: SCAN cursor %d too large", c)
	case c != 0:
		next = uint64(i)<<pageShift | c
	case i+1 < len(nodes):
		next = uint64(i+1) << pageShift
	}
	type found struct {
		room  string
		lower []*redis.IntCmd // EXISTS of the room's sets in lower partitions
	}
	var all []found
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, key := range keys {
			room, ok := k.RoomName(key, ns)
			if !ok {
				continue
			}
			f := found{room: room}
			for p := range k.Partitions() {
				if k.RoomSessions(p, ns, room) == key {
					break
				}
				f.lower = append(f.lower, pipe.Exists(ctx, k.RoomSessions(p, ns, room)))
			}
			all = append(all, f)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("session: list rooms: %w", err)
	}
	rooms = make([]string, 0, len(all))
	for _, f := range all {
		if !slices.ContainsFunc(f.lower, func(c *redis.IntCmd) bool { return c.Val() > 0 }) {
			rooms = append(rooms, f.room)
		}
	}
	return rooms, next, nil
}

// scanNodes returns the Redis clients a SCAN of the keyspace must go to:
// the Store's client, or on a Redis Cluster (where SCAN reads one node)
// the client of each primary, by address.
func (s *Store) scanNodes(ctx context.Context) ([]redis.Cmdable, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{s.rdb}, nil
	}
	var mu sync.Mutex
	var masters []*redis.Client
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(masters, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	nodes := make([]redis.Cmdable, len(masters))
	for i, m := range masters {
		nodes[i] = m
	}
	return nodes, nil
}

// scan yields the members of the set key(p) names in each partition p.
func (s *Store) scan(ctx context.Context, key func(p int) string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for p := range s.cfg.Keys.Partitions() {
			var cursor uint64
			for {
				ids, next, err := s.rdb.SScan(ctx, key(p), cursor, "", 500).Result()
				if err != nil {
					yield("", fmt.Errorf("session: list sessions: %w", err))
					return
				}
				for _, id := range ids {
					if !yield(id, nil) {
						return
					}
				}
				if next == 0 {
					break
				}
				cursor = next
			}
		}
	}
}

// count sums the cardinality (SCARD) of the set key(p) names in each
// partition p, in one pipeline.
func (s *Store) count(ctx context.Context, key func(p int) string) (int64, error) {
	cmds := make([]*redis.IntCmd, s.cfg.Keys.Partitions())
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range cmds {
			cmds[p] = pipe.SCard(ctx, key(p))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// CountNamespace returns how many sessions are connected to namespace ns.
func (s *Store) CountNamespace(ctx context.Context, ns string) (int64, error) {
	n, err := s.count(ctx, func(p int) string { return s.cfg.Keys.NamespaceSessions(p, ns) })
	if err != nil {
		return 0, fmt.Errorf("session: count namespace: %w", err)
	}
	return n, nil
}

// CountRoom returns how many sessions are in room of namespace ns.
func (s *Store) CountRoom(ctx context.Context, ns, room string) (int64, error) {
	n, err := s.count(ctx, func(p int) string { return s.cfg.Keys.RoomSessions(p, ns, room) })
	if err != nil {
		return 0, fmt.Errorf("session: count room: %w", err)
	}
	return n, nil
}
