package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

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
// across the cluster, partition after partition, 500 at a time (ZRANGE
// BYLEX of each partition's memberships, bus.Keys.Members), never one giant
// read. An id may appear twice if its session leaves and joins again
// during the iteration.
func (s *Store) Sessions(ctx context.Context, ns string) iter.Seq2[string, error] {
	return s.members(ctx, ns, "")
}

// RoomSessions iterates over the ids of the sessions in room of namespace
// ns, as Sessions does.
func (s *Store) RoomSessions(ctx context.Context, ns, room string) iter.Seq2[string, error] {
	return s.members(ctx, ns, room)
}

// membersPage is how many entries members reads at a time.
const membersPage = 500

// members yields the ids of the members of room of namespace ns (room "":
// of the namespace) in each partition in turn.
func (s *Store) members(ctx context.Context, ns, room string) iter.Seq2[string, error] {
	prefix := bus.MemberPrefix(ns, room)
	lo, hi := bus.MemberRange(ns, room)
	return func(yield func(string, error) bool) {
		for p := range s.cfg.Keys.Partitions() {
			from := lo
			for {
				entries, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.cfg.Keys.Members(p), Start: from, Stop: hi,
					ByLex: true, Count: membersPage}).Result()
				if err != nil {
					yield("", fmt.Errorf("session: list sessions: %w", err))
					return
				}
				for _, e := range entries {
					if !yield(e[len(prefix):], nil) {
						return
					}
				}
				if len(entries) < membersPage {
					break
				}
				from = "(" + entries[len(entries)-1]
			}
		}
	}
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
// namespace ns (room "") or in room of ns, with ZSCAN over each
// partition's memberships (bus.Keys.Members, MATCH the entries of the room)
// in turn, going on to the next partition while the page holds fewer than
// count ids: start with cursor 0, pass the returned next cursor for the
// next page, stop when it is 0. The cursor holds the partition in its top
// 8 bits (bus.MaxPartitions) and ZSCAN's cursor in the others;
// ErrBadCursor for one no page returned. count is a hint (ZSCAN's COUNT:
// the entries of the partition looked at, of every namespace and room, so
// a page may be empty before the last; a partition with few memberships
// comes whole). An id may appear twice if the memberships change between
// pages, as ZSCAN allows; one a member all along appears.
func (s *Store) SessionsPage(ctx context.Context, ns, room string, cursor uint64, count int64) (ids []string, next uint64, err error) {
	k := s.cfg.Keys
	prefix := bus.MemberPrefix(ns, room)
	ids, next, err = s.scanPages(cursor, count, func(p int, c uint64) ([]string, uint64, error) {
		page, nc, err := s.rdb.ZScan(ctx, k.Members(p), c, bus.GlobPrefix(prefix), count).Result()
		var found []string
		for i := 0; i < len(page); i += 2 { // entry, score
			found = append(found, page[i][len(prefix):])
		}
		return found, nc, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("session: list sessions: %w", err)
	}
	return ids, next, nil
}

// scanPages returns one page of what scan finds, the partitions' scans in
// turn, from cursor (SessionsPage's: the partition in its top bits, above
// pageShift, the partition's ZSCAN cursor below), going on to the next
// partition while the page holds fewer than count items; the next cursor
// is 0 after the last partition. scan(p, c) runs partition p's scan from
// ZSCAN cursor c and returns what it found and the next ZSCAN cursor.
func (s *Store) scanPages(cursor uint64, count int64, scan func(p int, c uint64) ([]string, uint64, error)) ([]string, uint64, error) {
	p, c := int(cursor>>pageShift), cursor&(1<<pageShift-1)
	if p >= s.cfg.Keys.Partitions() {
		return nil, 0, ErrBadCursor
	}
	var items []string
	for {
		found, nc, err := scan(p, c)
		if err != nil {
			return nil, 0, err
		}
		items = append(items, found...)
		switch {
		case nc >= 1<<pageShift:
			return nil, 0, fmt.Errorf("ZSCAN cursor %d too large", nc)
		case nc != 0:
			return items, uint64(p)<<pageShift | nc, nil
		case p+1 == s.cfg.Keys.Partitions():
			return items, 0, nil
		case int64(len(items)) >= count:
			return items, uint64(p+1) << pageShift, nil
		}
		p, c = p+1, 0
	}
}

// pageShift places the partition in a SessionsPage cursor.
const pageShift = 56

// ErrBadCursor is returned for a page cursor that no page returned.
var ErrBadCursor = errors.New("session: bad page cursor")

// RoomsPage returns one page of the names of the rooms of namespace ns that
// have members, with ZSCAN over each partition's room index
// (bus.Keys.RoomIndex, MATCH the rooms of ns) in turn, going on to the
// next partition while the page holds fewer than count rooms: start with
// cursor 0, pass the returned next cursor, stop when it is 0; ErrBadCursor
// for one no page returned. The cursor is SessionsPage's. count is
// ZSCAN's COUNT, the rooms of every namespace looked at (a page may be
// empty before the last). A room is in the index of each partition where
// it has members; it is listed for the first of them only (one ZSCORE per
// lower partition, pipelined), so it appears once unless memberships
// change between pages.
func (s *Store) RoomsPage(ctx context.Context, ns string, cursor uint64, count int64) (rooms []string, next uint64, err error) {
	k := s.cfg.Keys
	rooms, next, err = s.scanPages(cursor, count, func(p int, c uint64) ([]string, uint64, error) {
		page, nc, err := s.rdb.ZScan(ctx, k.RoomIndex(p), c, bus.GlobPrefix(bus.RoomMember(ns, "")), count).Result()
		if err != nil {
			return nil, 0, err
		}
		first, err := s.firstHolding(ctx, p, ns, page)
		return first, nc, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("session: list rooms: %w", err)
	}
	return rooms, next, nil
}

// firstHolding returns the names of the rooms of namespace ns in page (a
// ZSCAN reply of partition p's room index: room member, score, ...) that
// no lower partition's index holds.
func (s *Store) firstHolding(ctx context.Context, p int, ns string, page []string) ([]string, error) {
	k := s.cfg.Keys
	lower := make([][]*redis.FloatCmd, 0, len(page)/2)
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := 0; i < len(page); i += 2 {
			var scores []*redis.FloatCmd
			for q := range p {
				scores = append(scores, pipe.ZScore(ctx, k.RoomIndex(q), page[i]))
			}
			lower = append(lower, scores)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var rooms []string
	for i, scores := range lower {
		if !slices.ContainsFunc(scores, func(c *redis.FloatCmd) bool { return c.Err() == nil }) {
			rooms = append(rooms, page[2*i][len(bus.RoomMember(ns, "")):])
		}
	}
	return rooms, nil
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

// countMembers sums the members of room of namespace ns (room "": of the
// namespace) in the memberships key(p) of each partition p (ZLEXCOUNT),
// in one pipeline.
func (s *Store) countMembers(ctx context.Context, key func(p int) string, ns, room string) (int64, error) {
	lo, hi := bus.MemberRange(ns, room)
	cmds := make([]*redis.IntCmd, s.cfg.Keys.Partitions())
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range cmds {
			cmds[p] = pipe.ZLexCount(ctx, key(p), lo, hi)
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
	n, err := s.countMembers(ctx, s.cfg.Keys.Members, ns, "")
	if err != nil {
		return 0, fmt.Errorf("session: count namespace: %w", err)
	}
	return n, nil
}

// CountRoom returns how many sessions are in room of namespace ns.
func (s *Store) CountRoom(ctx context.Context, ns, room string) (int64, error) {
	n, err := s.countMembers(ctx, s.cfg.Keys.Members, ns, room)
	if err != nil {
		return 0, fmt.Errorf("session: count room: %w", err)
	}
	return n, nil
}
