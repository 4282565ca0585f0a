package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/realtime/realtime/pkg/bus"
)

// ErrBadRoom is returned for a room name that is empty or contains '\n'.
var ErrBadRoom = errors.New("session: room names must be non-empty and contain no newline")

// Effect is one change a worker (or an emitter) makes: deliver, join,
// leave, broadcast, remember a server ack, end. Effects are applied by one
// Lua script per batch, together with the XACK of the signals that caused
// them, so a crash neither loses nor repeats them.
type Effect struct {
	op   byte
	args []string
}

// DeliverEffect queues packet for session sid (see Store.Deliver).
func DeliverEffect(sid, packet string) Effect { return Effect{'d', []string{sid, packet}} }

// JoinEffect puts sid in room of namespace ns.
func JoinEffect(sid, ns, room string) Effect { return Effect{'j', []string{sid, ns, room}} }

// LeaveEffect takes sid out of room of namespace ns.
func LeaveEffect(sid, ns, room string) Effect { return Effect{'l', []string{sid, ns, room}} }

// BroadcastEffect sends packet to every session in namespace ns (room "")
// or in room, except the session except ("" none).
func BroadcastEffect(ns, room, except, packet string) Effect {
	return Effect{'b', []string{ns, room, except, packet}}
}

// AckEffect remembers that the client's answer to server ack id of session
// sid goes to reply channel channel.
func AckEffect(sid string, id uint64, channel string) Effect {
	return Effect{'a', []string{sid, strconv.FormatUint(id, 10), channel}}
}

// EndEffect ends session sid with reason, after writing packet to it.
func EndEffect(sid string, reason bus.DisconnectReason, packet string) Effect {
	return Effect{'e', []string{sid, string(reason), packet}}
}

// LeaveNamespaceEffect disconnects sid from namespace ns (the server side of
// 0::/ns): packet is written to the client first.
func LeaveNamespaceEffect(sid, ns string, reason bus.DisconnectReason, packet string) Effect {
	return Effect{'n', []string{sid, ns, string(reason), packet}}
}

// ValidRoom checks a room name.
func ValidRoom(room string) error {
	if room == "" || strings.ContainsRune(room, '\n') {
		return ErrBadRoom
	}
	return nil
}

// Commit is one signal's acknowledgement with its effects: entry ID of
// Stream, acknowledged in consumer group Group (required with an ID: the
// group of the worker's app, see bus.ConsumerConfig.Group). With Stream and
// ID empty, the effects apply unconditionally (an emitter's).
type Commit struct {
	Stream  string
	Group   string
	ID      string
	Effects []Effect
}

// ErrNoGroup is returned by Apply for a commit with an entry ID and no
// consumer group.
var ErrNoGroup = errors.New("session: a commit acknowledging an entry needs its consumer group")

// ErrUnknownStream is returned by Apply for a commit whose Stream is not a
// partition stream of the Store's keys.
var ErrUnknownStream = errors.New("session: a commit on a stream that is no partition's")

// Apply applies commits and returns how many were applied (a commit whose
// entry was already acknowledged applies nothing). Where every partition
// is on one node (Config.PerPartition false) they run as one script
// (commit_node.lua), all effects at once, in order. On a Redis Cluster whose
// partitions are spread, the commits of each
// partition stream run as one script on the partition (commit.lua,
// run at once across partitions); an emitter's (no ID) run on the partitions
// of their sessions, a broadcast on every partition. Effects a worker's
// commit made on other partitions are applied from the partition's outbox
// before Apply returns (DrainOutbox); when that fails, the outbox keeps
// them for the next drain, and Apply still reports success: the commits
// are applied, and their remote effects will be.
func (s *Store) Apply(ctx context.Context, commits ...Commit) (int, error) {
	if !s.cfg.PerPartition {
		return s.applyOnNode(ctx, commits)
	}
	k := s.cfg.Keys
	runs := map[int][]scriptCommit{}
	streams := map[string]int{} // partition of each stream named (a batch names few)
	var order []int             // partitions in the order of their first commit
	add := func(p int, c scriptCommit) {
		if _, ok := runs[p]; !ok {
			order = append(order, p)
		}
		runs[p] = append(runs[p], c)
	}
	for _, c := range commits {
		if c.ID == "" {
			// An emitter's: each effect on its session's partition, a
			// broadcast on each partition.
			for _, e := range c.Effects {
				if e.op == 'b' {
					for p := range k.Partitions() {
						add(p, scriptCommit{effects: []partEffect{{e, strconv.Itoa(p)}}})
					}
					continue
				}
				p := k.PartitionOf(e.args[0])
				add(p, scriptCommit{effects: []partEffect{{e, strconv.Itoa(p)}}})
			}
			continue
		}
		if c.Group == "" {
			return 0, fmt.Errorf("%w (entry %s of %s)", ErrNoGroup, c.ID, c.Stream)
		}
		p, ok := streams[c.Stream]
		if !ok {
			p = k.StreamPartition(c.Stream)
			streams[c.Stream] = p
		}
		if p < 0 {
			return 0, fmt.Errorf("%w: %s", ErrUnknownStream, c.Stream)
		}
		add(p, s.scriptCommit(c))
	}
	calls := make([]*scriptCall, len(order))
	for i, p := range order {
		decl := &declaration{}
		me := strconv.Itoa(p)
		for _, c := range runs[p] {
			for _, e := range c.effects {
				if e.part == me || e.part == "" {
					decl.effect(p, e.Effect)
				}
			}
		}
		calls[i] = s.commitCall(p, runs[p], decl)
	}
	s.evalAll(ctx, calls)
	applied := 0
	var err error
	var outboxes [][]outboxEntry
	var overflowed []string
	for i, c := range calls {
		r, cerr := parseCommitReply(c.cmd)
		if cerr != nil {
			err = cerr
			continue
		}
		for j := range r.outbox {
			r.outbox[j].from = order[i]
		}
		applied += r.applied
		overflowed = append(overflowed, r.overflowed...)
		if len(r.outbox) > 0 {
			outboxes = append(outboxes, r.outbox)
		}
	}
	// A session left overflowed is ended by its partition's reaper.
	_ = s.endOverflowed(ctx, overflowed)
	if err != nil {
		return applied, fmt.Errorf("session: apply effects: %w", err)
	}
	// What fails here stays in the outboxes, for the next drain (a
	// worker's next commit on the partition, or its periodic DrainOutbox).
	_ = s.applyOutbox(ctx, outboxes...)
	return applied, nil
}

// commitCall returns the commit.lua run of commits on partition p, with
// the sessions of decl.
func (s *Store) commitCall(p int, commits []scriptCommit, decl *declaration) *scriptCall {
	k := s.cfg.Keys
	return &scriptCall{script: commitScript, parts: []int{p}, keys: []string{k.Deadlines(p), k.Outbox(p), k.Stream(p)},
		args: s.commitArgs(p, commits), decl: decl}
}

// applyOnNode is Apply where every partition is on one node: one
// commit_node.lua for all of commits, which applies each effect in its
// session's partition and a broadcast in every partition, without the
// outbox.
func (s *Store) applyOnNode(ctx context.Context, commits []Commit) (int, error) {
	call, err := s.nodeCall(commits)
	if err != nil {
		return 0, err
	}
	s.evalAll(ctx, []*scriptCall{call})
	r, err := parseCommitReply(call.cmd)
	if err != nil {
		return 0, fmt.Errorf("session: apply effects: %w", err)
	}
	// A session left overflowed is ended by its partition's reaper.
	_ = s.endOverflowed(ctx, r.overflowed)
	return r.applied, nil
}

// nodeCall returns the commit_node.lua run of commits: the sessions of
// their effects declared (for delivery only where they deliver or record
// an ack), and the shared keys of the partitions they reach.
func (s *Store) nodeCall(commits []Commit) (*scriptCall, error) {
	k := s.cfg.Keys
	scs := make([]scriptCommit, len(commits))
	decl := &declaration{}
	reach := map[int]bool{} // the partitions the effects reach, whose shared keys the script takes
	for i, c := range commits {
		if c.ID != "" {
			if c.Group == "" {
				return nil, fmt.Errorf("%w (entry %s of %s)", ErrNoGroup, c.ID, c.Stream)
			}
			if k.StreamPartition(c.Stream) < 0 {
				return nil, fmt.Errorf("%w: %s", ErrUnknownStream, c.Stream)
			}
		}
		scs[i] = s.scriptCommit(c)
		for _, e := range c.Effects {
			if e.op == 'b' {
				for q := range k.Partitions() {
					decl.effect(q, e)
					reach[q] = true
				}
			} else {
				q := k.PartitionOf(e.args[0])
				decl.effect(q, e)
				reach[q] = true
			}
		}
	}
	parts := slices.Sorted(maps.Keys(reach))
	call := &scriptCall{script: commitNodeScript, parts: parts, keys: s.nodeKeys, args: s.commitArgs(-1, scs), decl: decl}
	call.args[5] = partitionList(parts)
	return call, nil
}

// scriptCommit returns c as the commit scripts take it: each effect with
// its session's partition, a broadcast with "" (every partition).
func (s *Store) scriptCommit(c Commit) scriptCommit {
	sc := scriptCommit{stream: c.Stream, group: c.Group, id: c.ID, effects: make([]partEffect, len(c.Effects))}
	for i, e := range c.Effects {
		part := ""
		if e.op != 'b' {
			part = strconv.Itoa(s.cfg.Keys.PartitionOf(e.args[0]))
		}
		sc.effects[i] = partEffect{e, part}
	}
	return sc
}

// A scriptCommit is a Commit as commit.lua takes it: each effect with the
// partition it applies to.
type scriptCommit struct {
	stream, group, id string
	effects           []partEffect
}

// A partEffect is an effect and the number of the partition it applies to
// ("" for a broadcast to every partition).
type partEffect struct {
	Effect
	part string
}

// commitArgs returns commit.lua's ARGV for commits on partition p, or with
// p < 0 commit_node.lua's for commits on every partition.
func (s *Store) commitArgs(p int, commits []scriptCommit) []any {
	n := 6
	for _, c := range commits {
		n += 4
		for _, e := range c.effects {
			n += 3 + len(e.args)
		}
	}
	// ARGV[4]: the declared sessions (declareAll); ARGV[6]: p, or for
	// commit_node.lua the partitions the effects reach (its caller's).
	head := []any{"", s.cfg.Keys.Partitions(), p}
	args := append(make([]any, 0, n), s.args(head...)...)
	for _, c := range commits {
		args = append(args, c.stream, c.group, c.id, len(c.effects))
		for _, e := range c.effects {
			args = append(args, string(e.op), e.part, len(e.args))
			for _, a := range e.args {
				args = append(args, a)
			}
		}
	}
	return args
}

// partitionList is commit_node.lua's ARGV[6]: partition numbers joined by
// ",".
func partitionList(parts []int) string {
	var b strings.Builder
	for i, q := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(q))
	}
	return b.String()
}

// AckWrite is a client's ack packet as a step of a committer batch.
func (s *Store) AckWrite(sig *bus.Signal) bus.Write {
	args := s.args(sig.SID, strconv.FormatUint(sig.MsgID, 10), sig.Args)
	args = append(args, sig.Values()...)
	keys := s.sessionKeys(sig.SID)
	return s.write(ackScript, s.cfg.Keys.PartitionOf(sig.SID), keys, args...)
}
