package session

import (
	"context"
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
// (docs/redis.md, "Declared keys"): their ids in ARGV[4] and nine keys each
// after the script's own KEYS (lua/lib.lua's declare_sessions). The members
// of a broadcast's room are read just before the script runs; the script
// checks that none joined since (lua/lib.lua's effect_undeclared), and
// otherwise writes nothing and answers sessionsStaleReply: evalAll reads
// them again and runs it again.

// sessionsStaleReply is the error a commit or inbox script answers, having
// written nothing, when an effect would name a session its caller did not
// declare (a session that joined a broadcast's room since its members
// were read).
const sessionsStaleReply = "SESSIONSTALE a broadcast's room has a member the caller did not declare"

// declareAttempts is how many times evalAll runs a script whose declared
// sessions were stale.
const declareAttempts = 3

// A declaration is what a script on sessions named by data declares:
// sessions by id, and the rooms whose polling members it reaches (read
// before each run).
type declaration struct {
	sids  []string
	seen  map[string]bool
	rooms []declaredRoom
}

// A declaredRoom is a broadcast's room in one partition.
type declaredRoom struct {
	p        int
	ns, room string
}

// session declares session sid (once).
func (d *declaration) session(sid string) {
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if !d.seen[sid] {
		d.seen[sid] = true
		d.sids = append(d.sids, sid)
	}
}

// effect declares what effect e names when applied on partition p: its
// session, or a broadcast's room there.
func (d *declaration) effect(p int, e Effect) {
	if e.op == 'b' {
		d.rooms = append(d.rooms, declaredRoom{p, e.args[0], e.args[1]})
		return
	}
	d.session(e.args[0])
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
		d := &declaration{}
		for _, sid := range c.decl.sids {
			d.session(sid)
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
				d.session(e[len(prefix):])
			}
		}
		c.args[3] = strings.Join(d.sids, "\n")
		c.declared = s.declaredKeys(slices.Clip(c.keys), d.sids)
	}
}

// declaredKeys returns keys followed by the nine keys of each of sids, in
// the order lua/lib.lua's declare_sessions reads them (sessionKeys' order).
func (s *Store) declaredKeys(keys []string, sids []string) []string {
	k := s.cfg.Keys
	for _, sid := range sids {
		keys = append(keys, k.Session(sid), k.Mailbox(sid), k.SessionNamespaces(sid), k.SessionRooms(sid),
			k.Acks(sid), k.Kick(sid), k.Confirmed(sid), k.StreamFor(sid), k.Post(sid))
	}
	return keys
}

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
