package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

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

// Apply runs commits as one script and returns how many were applied (a
// commit whose entry was already acknowledged applies nothing).
func (s *Store) Apply(ctx context.Context, commits ...Commit) (int, error) {
	k := s.cfg.Keys
	n := 4 + k.Partitions()
	for _, c := range commits {
		if c.ID != "" && c.Group == "" {
			return 0, fmt.Errorf("%w (entry %s of %s)", ErrNoGroup, c.ID, c.Stream)
		}
		n += 4
		for _, e := range c.Effects {
			n += 3 + len(e.args)
		}
	}
	args := append(make([]any, 0, n), s.args(k.Partitions())...)
	for p := range k.Partitions() {
		args = append(args, k.PartitionPrefix(p))
	}
	for _, c := range commits {
		args = append(args, c.Stream, c.Group, c.ID, len(c.Effects))
		for _, e := range c.Effects {
			part := "" // a broadcast's sessions are in every partition
			if e.op != 'b' {
				part = strconv.Itoa(k.PartitionOf(e.args[0]))
			}
			args = append(args, string(e.op), part, len(e.args))
			for _, a := range e.args {
				args = append(args, a)
			}
		}
	}
	n, err := commitScript.Run(ctx, s.rdb, []string{k.Deadlines(0)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("session: apply effects: %w", err)
	}
	return n, nil
}

// AckWrite is a client's ack packet as a step of a committer batch.
func (s *Store) AckWrite(sig *bus.Signal) bus.Write {
	args := s.args(sig.SID, strconv.FormatUint(sig.MsgID, 10), sig.Args)
	args = append(args, sig.Values()...)
	keys := s.sessionKeys(sig.SID)
	return func(pipe redis.Pipeliner) { ackScript.Eval(context.Background(), pipe, keys, args...) }
}
