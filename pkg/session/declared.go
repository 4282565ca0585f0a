package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// Declared sessions: a script on sessions named by data (the effects of a
// commit or an outbox entry, the polling members of the rooms its
// broadcasts reach, the reapers' victims) declares their keys too
// (docs/redis.md, "Declared keys"): their ids in ARGV[4], each after a kind
// letter, and their keys after the script's own KEYS (lua/lib.lua's
// declare_sessions): nine for a session declared fully (one the script may
// end, or whose memberships it may change), three for one declared for
// delivery only (one it only delivers to, or records an ack for). The
// members of a broadcast's room are read just before the script runs; the
// script checks that none joined since (lua/lib.lua's effect_undeclared),
// and otherwise writes nothing and answers sessionsStaleReply: evalAll
// reads them again and runs it again.
//
// A session declared for delivery only whose mailbox overflows cannot be
// ended by the script: it is marked, and the script lists it in its reply
// (lua/lib.lua's overflow_later) for endOverflowed to end it.

// sessionsStaleReply is the error a commit or inbox script answers, having
// written nothing, when an effect would name a session its caller did not
// declare (a session that joined a broadcast's room since its members
// were read).
const sessionsStaleReply = "SESSIONSTALE a broadcast's room has a member the caller did not declare"

// streamUndeclaredReply is the error a commit script answers, having
// written nothing, when a commit with an entry id names a stream that is
// not among the script's keys (a caller's bug: Apply checks each commit's
// stream first, ErrUnknownStream).
const streamUndeclaredReply = "STREAMUNDECLARED a commit's stream is not among the script's keys"

// declareAttempts is how many times evalAll runs a script whose declared
// sessions were stale.
const declareAttempts = 3

// The kind letters of ARGV[4]'s lines (lua/lib.lua's declare_sessions).
const (
	declareFull     = 'f' // nine keys: sessionKeys' own, but the deadlines set
	declareDelivery = 'd' // three keys: hash, mailbox, acks
)

// A declaration is what a script on sessions named by data declares:
// sessions by id, and the rooms whose polling members it reaches (read
// before each run).
type declaration struct {
	sids  []string
	full  map[string]bool // by sid: declared fully (every sid of sids has an entry)
	rooms []declaredRoom
}

// A declaredRoom is a broadcast's room in one partition.
type declaredRoom struct {
	p        int
	ns, room string
}

// fullDeclaration returns the declaration of sids, each fully (the
// reapers' victims).
func fullDeclaration(sids []string) *declaration {
	d := &declaration{}
	for _, sid := range sids {
		d.session(sid, true)
	}
	return d
}

// session declares session sid (once): fully, or, unless another call
// declared it fully, for delivery only.
func (d *declaration) session(sid string, full bool) {
	if d.full == nil {
		d.full = map[string]bool{}
	}
	was, seen := d.full[sid]
	if !seen {
		d.sids = append(d.sids, sid)
	}
	d.full[sid] = was || full
}

// effect declares what effect e names when applied on partition p: its
// session (for delivery only for a delivery or an ack, the effects that
// cannot end it but by overflow), or a broadcast's room there.
func (d *declaration) effect(p int, e Effect) {
	switch e.op {
	case 'b':
		d.rooms = append(d.rooms, declaredRoom{p, e.args[0], e.args[1]})
	case 'd', 'a':
		d.session(e.args[0], false)
	default:
		d.session(e.args[0], true)
	}
}

// declareAll reads the members of the rooms the calls' declarations reach
// and gives each call its declared sessions: ARGV[4] and their keys after
// its own. A call whose read failed gets the error as its result, and is
// not run (its cmd is set). The reads run at once, each its own command
// (as evalAll's scripts: go-redis sends a pipeline again after a read
// timeout, which would hold the caller several timeouts while Redis
// stalls).
func (s *Store) declareAll(ctx context.Context, calls []*scriptCall) {
	type read struct {
		call *scriptCall
		r    declaredRoom
		cmd  *redis.StringSliceCmd
	}
	var reads []*read
	for _, c := range calls {
		if c.decl != nil {
			for _, r := range c.decl.rooms {
				reads = append(reads, &read{call: c, r: r})
			}
		}
	}
	var wg sync.WaitGroup
	for _, rd := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, hi := bus.MemberRange(rd.r.ns, rd.r.room)
			rd.cmd = s.rdb.ZRangeByLex(ctx, s.cfg.Keys.PollingMembers(rd.r.p), &redis.ZRangeBy{Min: lo, Max: hi})
		}()
	}
	wg.Wait()
	for _, c := range calls {
		if c.decl == nil {
			continue
		}
		d := c.decl
		if len(d.rooms) > 0 {
			d = &declaration{}
			for _, sid := range c.decl.sids {
				d.session(sid, c.decl.full[sid])
			}
		}
		for _, rd := range reads {
			if rd.call != c {
				continue
			}
			if err := rd.cmd.Err(); err != nil {
				c.cmd = redis.NewCmd(ctx)
				c.cmd.SetErr(fmt.Errorf("read the members of room %q of %q: %w", rd.r.room, rd.r.ns, err))
				break
			}
			prefix := bus.MemberPrefix(rd.r.ns, rd.r.room)
			for _, e := range rd.cmd.Val() {
				d.session(e[len(prefix):], false)
			}
		}
		c.args[3], c.declared = s.declared(slices.Clip(c.keys), d)
	}
}

// declared returns ARGV[4] for the sessions of d, and keys followed by
// their keys, in the order lua/lib.lua's declare_sessions reads them:
// sessionKeys' order for a session declared fully, hash, mailbox and acks
// for one declared for delivery only.
func (s *Store) declared(keys []string, d *declaration) (string, []string) {
	k := s.cfg.Keys
	var lines strings.Builder
	for i, sid := range d.sids {
		if i > 0 {
			lines.WriteByte('\n')
		}
		if d.full[sid] {
			lines.WriteByte(declareFull)
			keys = append(keys, k.Session(sid), k.Mailbox(sid), k.SessionNamespaces(sid), k.SessionRooms(sid),
				k.Acks(sid), k.Kick(sid), k.Confirmed(sid), k.StreamFor(sid), k.Post(sid))
		} else {
			lines.WriteByte(declareDelivery)
			keys = append(keys, k.Session(sid), k.Mailbox(sid), k.Acks(sid))
		}
		lines.WriteString(sid)
	}
	return lines.String(), keys
}

// endOverflowed ends, with reason overflow, the sessions declared for
// delivery only whose mailbox overflowed in a script (its reply's list,
// lua/lib.lua's overflow_later). A session it fails to end is left to the
// partition's reaper (the script set its deadline in the past), which ends
// it with the same reason; the error says which failed. The ends run at
// once, overflowEnds at a time (a broadcast can overflow a room of stalled
// polling clients).
func (s *Store) endOverflowed(ctx context.Context, sids []string) error {
	if len(sids) == 0 { // every commit but one that overflowed a mailbox
		return nil
	}
	errs := make([]error, len(sids))
	slots := make(chan struct{}, overflowEnds)
	var wg sync.WaitGroup
	for i, sid := range sids {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if _, err := s.End(ctx, sid, bus.ReasonOverflow, ""); err != nil {
				errs[i] = fmt.Errorf("session %s: %w", sid, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// overflowEnds is how many ends endOverflowed runs at once.
const overflowEnds = 16

// unpackEffects reads the effects of an outbox entry (lua/lib.lua's
// pack_fields of op, argument count, arguments, ...).
func unpackEffects(packed string) ([]Effect, error) {
	var fields []string
	for rest := packed; rest != ""; {
		n, after, ok := strings.Cut(rest, ":")
		size, err := strconv.Atoi(n)
		if !ok || err != nil || size < 0 || size > len(after) {
			return nil, fmt.Errorf("%w: packed effects %.40q", ErrBadOutbox, packed)
		}
		fields, rest = append(fields, after[:size]), after[size:]
	}
	var effects []Effect
	for i := 0; i < len(fields); {
		if i+1 >= len(fields) || len(fields[i]) != 1 {
			return nil, fmt.Errorf("%w: packed effects %.40q", ErrBadOutbox, packed)
		}
		na, err := strconv.Atoi(fields[i+1])
		if err != nil || na < 1 || i+2+na > len(fields) {
			return nil, fmt.Errorf("%w: packed effects %.40q", ErrBadOutbox, packed)
		}
		effects = append(effects, Effect{fields[i][0], fields[i+2 : i+2+na]})
		i += 2 + na
	}
	return effects, nil
}
