package worker

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// Errors callers may branch on.
var (
	// ErrAlreadyAcked is returned by Event.Ack after the first ack.
	ErrAlreadyAcked = errors.New("worker: event already acknowledged")
	// ErrRejected marks a handler's error as invalid client input (see
	// Event.Reject): what the handler did is committed, the signal is not
	// retried. Wrap it for signals other than events:
	// fmt.Errorf("%w: bad nickname", worker.ErrRejected).
	ErrRejected = errors.New("worker: rejected")
	// ErrAckTimeout is passed to an EmitAck callback when the client did not
	// answer before the context's deadline.
	ErrAckTimeout = errors.New("worker: no ack from the client before the deadline")
	// ErrNoReplies is returned by EmitAck on a socket of an Emitter, which
	// does not receive client answers (use a Worker).
	ErrNoReplies = errors.New("worker: this emitter does not receive client acks")
	// ErrBadRoom is returned for an empty room name or one with a newline.
	ErrBadRoom = session.ErrBadRoom
)

// EmitterConfig configures an Emitter.
type EmitterConfig struct {
	// Keys names the cluster's keys. Default: bus.NewKeys("", 0).
	Keys bus.Keys
	// Node identifies this process in the signals it writes (e.g. the
	// disconnects of sessions it ends). Default: "emitter".
	Node string
	// MaxMailbox is ignored.
	//
	// Deprecated: a polling session's mailbox bounds are set by the gateway
	// that created it (gateway.Config.MailboxBytes) and stored with the
	// session, so every process honours the same ones.
	MaxMailbox int
}

// Emitter emits, broadcasts, lists and disconnects sockets from any Go
// process, without consuming signals. Its actions apply at once.
type Emitter struct {
	rdb   redis.UniversalClient
	store *session.Store
	keys  bus.Keys
	node  string
}

// NewEmitter returns an emitter on rdb.
func NewEmitter(rdb redis.UniversalClient, cfg EmitterConfig) *Emitter {
	if cfg.Keys == (bus.Keys{}) {
		cfg.Keys = bus.NewKeys("", 0)
	}
	if cfg.Node == "" {
		cfg.Node = "emitter"
	}
	return &Emitter{
		rdb: rdb, keys: cfg.Keys, node: cfg.Node,
		store: session.New(rdb, session.Config{Keys: cfg.Keys, Node: cfg.Node}),
	}
}

// Redis returns the client the emitter uses, for an app's own keys (prefix
// them with Keys().Prefix() to share the cluster's namespace).
func (e *Emitter) Redis() redis.UniversalClient { return e.rdb }

// Keys returns the cluster's key names.
func (e *Emitter) Keys() bus.Keys { return e.keys }

// Socket returns a handle on session sid in namespace ns ("" default). Its
// actions apply at once; EmitAck needs a Worker's socket.
func (e *Emitter) Socket(sid, ns string) *Socket {
	return &Socket{id: sid, ns: ns, em: e}
}

// In returns the room of namespace ns for emits to all of its members.
func (e *Emitter) In(ns, room string) *Room {
	return &Room{em: e, ns: ns, room: room}
}

// Namespace returns namespace ns ("" default) for emits to all its sockets.
func (e *Emitter) Of(ns string) *Room { return &Room{em: e, ns: ns} }

// Sockets iterates over the ids of the sockets connected to namespace ns
// across the cluster, with a cursor (SSCAN), never one giant read. A socket
// may appear twice if the set changes during the scan, as SSCAN allows.
func (e *Emitter) Sockets(ctx context.Context, ns string) iter.Seq2[string, error] {
	return e.store.Sessions(ctx, ns)
}

// RoomSockets iterates over the ids of the sockets in a room.
func (e *Emitter) RoomSockets(ctx context.Context, ns, room string) iter.Seq2[string, error] {
	return e.store.RoomSessions(ctx, ns, room)
}

// Count returns how many sockets are connected to namespace ns.
func (e *Emitter) Count(ctx context.Context, ns string) (int64, error) {
	n, err := e.store.CountNamespace(ctx, ns)
	if err != nil {
		return 0, fmt.Errorf("worker: count: %w", err)
	}
	return n, nil
}

// CountRoom returns how many sockets are in a room.
func (e *Emitter) CountRoom(ctx context.Context, ns, room string) (int64, error) {
	n, err := e.store.CountRoom(ctx, ns, room)
	if err != nil {
		return 0, fmt.Errorf("worker: count room: %w", err)
	}
	return n, nil
}

// Disconnect ends session sid wherever it is held: the client receives 0::
// (it considers itself booted) and every namespace gets its disconnect
// signal with reason "server".
func (e *Emitter) Disconnect(ctx context.Context, sid string) error {
	_, err := e.store.Apply(ctx, session.Commit{Effects: []session.Effect{
		session.EndEffect(sid, bus.ReasonServer, "0::")}})
	return err
}

// Room addresses every socket of a namespace (room "") or of a room, except
// one socket when reached through Socket.To or Socket.Broadcast*.
type Room struct {
	em     *Emitter
	rec    *recorder // nil: apply at once
	ns     string
	room   string
	except string
}

// Emit sends event name with args to the room.
func (r *Room) Emit(name string, args ...any) error {
	a, err := marshalArgs(args)
	if err != nil {
		return err
	}
	return r.EmitRaw(name, a)
}

// EmitRaw sends event name with args, a JSON array, to the room.
func (r *Room) EmitRaw(name string, args []byte) error {
	return r.packet(protocol.Packet{Type: protocol.Event, Endpoint: r.ns, Data: protocol.AppendEvent(nil, name, args)})
}

// Send sends a message to the room.
func (r *Room) Send(msg string) error {
	return r.packet(protocol.Packet{Type: protocol.Message, Endpoint: r.ns, Data: []byte(msg)})
}

func (r *Room) packet(p protocol.Packet) error {
	if r.room != "" {
		if err := session.ValidRoom(r.room); err != nil {
			return err
		}
	}
	return r.em.effect(r.rec, session.BroadcastEffect(r.ns, r.room, r.except, string(protocol.Encode(p))))
}

// effect records e in rec, or applies it at once when rec is nil.
func (e *Emitter) effect(rec *recorder, eff session.Effect) error {
	if rec != nil {
		rec.effects = append(rec.effects, eff)
		return nil
	}
	_, err := e.store.Apply(context.Background(), session.Commit{Effects: []session.Effect{eff}})
	return err
}
