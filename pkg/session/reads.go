package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
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

// Sessions iterates over the ids of the sessions connected to namespace ns
// across the cluster, with a cursor (SSCAN, 500 at a time), never one giant
// read. An id may appear twice if the set changes during the scan, as
// SSCAN allows.
func (s *Store) Sessions(ctx context.Context, ns string) iter.Seq2[string, error] {
	return s.scan(ctx, s.cfg.Keys.NamespaceSessions(ns))
}

// RoomSessions iterates over the ids of the sessions in room of namespace
// ns, as Sessions does.
func (s *Store) RoomSessions(ctx context.Context, ns, room string) iter.Seq2[string, error] {
	return s.scan(ctx, s.cfg.Keys.RoomSessions(ns, room))
}

func (s *Store) scan(ctx context.Context, key string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		var cursor uint64
		for {
			ids, next, err := s.rdb.SScan(ctx, key, cursor, "", 500).Result()
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
				return
			}
			cursor = next
		}
	}
}

// CountNamespace returns how many sessions are connected to namespace ns.
func (s *Store) CountNamespace(ctx context.Context, ns string) (int64, error) {
	n, err := s.rdb.SCard(ctx, s.cfg.Keys.NamespaceSessions(ns)).Result()
	if err != nil {
		return 0, fmt.Errorf("session: count namespace: %w", err)
	}
	return n, nil
}

// CountRoom returns how many sessions are in room of namespace ns.
func (s *Store) CountRoom(ctx context.Context, ns, room string) (int64, error) {
	n, err := s.rdb.SCard(ctx, s.cfg.Keys.RoomSessions(ns, room)).Result()
	if err != nil {
		return 0, fmt.Errorf("session: count room: %w", err)
	}
	return n, nil
}
