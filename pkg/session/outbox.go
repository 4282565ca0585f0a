package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The outbox protocol (docs/redis.md, "Effects across partitions"): a
// worker's commit on partition p (commit.lua) applies the effects on p's
// sessions and appends those on other partitions' sessions to p's outbox
// stream, one entry per target partition q (fields OutboxTo, q, and
// OutboxEffects, the effects packed), in the same script as the XACKs. The
// entries are then applied on q, oldest first, by inbox.lua, which records
// the id of the last entry from p it applied (the inbox hash of q, field
// p) and skips those at or before it; and deleted from the outbox once
// applied. A crash between the steps leaves entries in the outbox, which
// the next drain applies (once: the inbox remembers).

// Outbox entry fields and how many entries one read takes.
const (
	OutboxTo      = "q" // the target partition's number
	OutboxEffects = "e" // the effects, packed (lua/lib.lua's pack_fields)
	OutboxRead    = 1000
)

// ErrBadOutbox is returned for an outbox entry that is not one.
var ErrBadOutbox = errors.New("session: malformed outbox entry")

// An outboxEntry is one entry of partition from's outbox, for partition to.
type outboxEntry struct {
	from, to int
	id       string
	effects  string
}

// A commitReply is commit.lua's (and commit_node.lua's) reply.
type commitReply struct {
	applied    int           // the commits applied
	outbox     []outboxEntry // the partition's outbox entries
	overflowed []string      // the sessions to end for overflow (endOverflowed)
}

// parseCommitReply reads commit.lua's reply: {applied, outbox entries,
// overflowed sessions}.
func parseCommitReply(cmd *redis.Cmd) (commitReply, error) {
	v, err := cmd.Slice()
	if err != nil {
		return commitReply{}, err
	}
	var r commitReply
	n, ok := int64(0), len(v) == 3
	var raw []any
	if ok {
		n, ok = v[0].(int64)
		raw, _ = v[1].([]any)
		r.overflowed, ok = sessionList(v[2], ok)
	}
	if !ok {
		return commitReply{}, fmt.Errorf("%w: commit reply %v", ErrBadOutbox, v)
	}
	r.applied = int(n)
	for _, e := range raw {
		entry, err := parseOutboxEntry(e)
		if err != nil {
			return commitReply{}, err
		}
		r.outbox = append(r.outbox, entry)
	}
	return r, nil
}

// parseInboxReply reads inbox.lua's reply: {applied, overflowed sessions}.
func parseInboxReply(cmd *redis.Cmd) (overflowed []string, err error) {
	v, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	ok := len(v) == 2
	if ok {
		_, ok = v[0].(int64)
		overflowed, ok = sessionList(v[1], ok)
	}
	if !ok {
		return nil, fmt.Errorf("%w: inbox reply %v", ErrBadOutbox, v)
	}
	return overflowed, nil
}

// sessionList reads a script's list of session ids (an empty Lua table
// comes as an empty array); ok is false when v is none, or ok was.
func sessionList(v any, ok bool) ([]string, bool) {
	list, isList := v.([]any)
	if !ok || !isList {
		return nil, false
	}
	sids := make([]string, 0, len(list))
	for _, e := range list {
		sid, isString := e.(string)
		if !isString {
			return nil, false
		}
		sids = append(sids, sid)
	}
	return sids, true
}

// parseOutboxEntry reads one entry as XRANGE returns it from a script:
// {id, {field, value, ...}}.
func parseOutboxEntry(r any) (outboxEntry, error) {
	pair, ok := r.([]any)
	if !ok || len(pair) != 2 {
		return outboxEntry{}, fmt.Errorf("%w: %v", ErrBadOutbox, r)
	}
	id, _ := pair[0].(string)
	fields, _ := pair[1].([]any)
	e := outboxEntry{id: id, to: -1}
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		value, _ := fields[i+1].(string)
		switch name {
		case OutboxTo:
			if q, err := strconv.Atoi(value); err == nil {
				e.to = q
			}
		case OutboxEffects:
			e.effects = value
		}
	}
	if id == "" || e.to < 0 {
		return outboxEntry{}, fmt.Errorf("%w: %v", ErrBadOutbox, r)
	}
	return e, nil
}

// DrainOutbox applies what partition p's outbox still holds (entries a
// commit appended and no drain applied yet: the worker that wrote them
// stopped, or Redis failed under it), at most OutboxRead entries, and
// returns how many it found: with a nil error it applied them all, else
// some may be left (or a session their deliveries overflowed was not ended
// at once: its partition's reaper ends it, endOverflowed). Workers call it for their partitions now and then; it is
// safe at any time, from any process.
func (s *Store) DrainOutbox(ctx context.Context, p int) (int, error) {
	k := s.cfg.Keys
	msgs, err := s.rdb.XRangeN(ctx, k.Outbox(p), "-", "+", OutboxRead).Result()
	if err != nil {
		return 0, fmt.Errorf("session: read outbox %d: %w", p, err)
	}
	entries := make([]outboxEntry, 0, len(msgs))
	for _, m := range msgs {
		q, err := strconv.Atoi(fmt.Sprint(m.Values[OutboxTo]))
		effects, _ := m.Values[OutboxEffects].(string)
		if err != nil || q < 0 || q >= k.Partitions() {
			return 0, fmt.Errorf("%w: %s of %s", ErrBadOutbox, m.ID, k.Outbox(p))
		}
		entries = append(entries, outboxEntry{from: p, to: q, id: m.ID, effects: effects})
	}
	return len(entries), s.applyOutbox(ctx, entries)
}

// applyOutbox applies outbox entries (each list from one partition's
// outbox, oldest first) with one inbox.lua run per source and target
// partition, all at once, then deletes from the outboxes the entries whose
// run succeeded.
func (s *Store) applyOutbox(ctx context.Context, lists ...[]outboxEntry) error {
	k := s.cfg.Keys
	type run struct {
		from, to int
		ids      []string
		call     *scriptCall
	}
	var runs []*run
	for _, list := range lists {
		byTo := map[int]*run{}
		for _, e := range list {
			r := byTo[e.to]
			if r == nil {
				r = &run{from: e.from, to: e.to, call: &scriptCall{script: inboxScript, parts: []int{e.to},
					keys: []string{k.Deadlines(e.to), k.Inbox(e.to)}, args: s.args("", e.from), decl: &declaration{}}}
				byTo[e.to] = r
				runs = append(runs, r)
			}
			effects, err := unpackEffects(e.effects)
			if err != nil {
				return fmt.Errorf("session: apply outbox %d on partition %d: entry %s: %w", e.from, e.to, e.id, err)
			}
			for _, eff := range effects {
				r.call.decl.effect(e.to, eff)
			}
			r.ids = append(r.ids, e.id)
			r.call.args = append(r.call.args, e.id, e.effects)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	calls := make([]*scriptCall, len(runs))
	for i, r := range runs {
		calls[i] = r.call
	}
	s.evalAll(ctx, calls)
	var failed error
	var overflowed []string
	done := map[int][]string{} // source partition -> entries applied
	for _, r := range runs {
		o, err := parseInboxReply(r.call.cmd)
		if err != nil {
			failed = fmt.Errorf("session: apply outbox %d on partition %d: %w", r.from, r.to, err)
			continue
		}
		overflowed = append(overflowed, o...)
		done[r.from] = append(done[r.from], r.ids...)
	}
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for from, ids := range done {
			pipe.XDel(ctx, k.Outbox(from), ids...)
		}
		return nil
	})
	if err != nil && failed == nil {
		failed = fmt.Errorf("session: trim outbox: %w", err)
	}
	if err := s.endOverflowed(ctx, overflowed); err != nil && failed == nil {
		failed = fmt.Errorf("session: apply outbox: %w", err)
	}
	return failed
}
