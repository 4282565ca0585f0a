package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

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
	// ErrBadCursor is returned by SocketsPage for a cursor no page returned.
	ErrBadCursor = session.ErrBadCursor
	// ErrTooManyRooms is returned by Socket.Join for a room that would put
	// the session in more than MaxRooms rooms (over all its namespaces).
	// It wraps ErrRejected: a handler that returns it is not retried.
	ErrTooManyRooms = fmt.Errorf("%w: too many rooms for one session", ErrRejected)
	// ErrRoomNameTooLong is returned by Socket.Join for a room name longer
	// than MaxRoomBytes. It wraps ErrRejected.
	ErrRoomNameTooLong = fmt.Errorf("%w: room name too long", ErrRejected)
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
	// MaxRooms bounds the rooms one session is in, over all its
	// namespaces: Socket.Join of a room beyond it fails with
	// ErrTooManyRooms and changes nothing. Default:
	// session.DefaultMaxRooms (1024).
	MaxRooms int
	// MaxRoomBytes bounds a room name, in bytes: Socket.Join of a longer
	// one fails with ErrRoomNameTooLong. Default:
	// session.DefaultMaxRoomBytes (256).
	MaxRoomBytes int
	// Timeout bounds the Redis work of one action that applies at once
	// (an emit, send, join, leave of a Socket or Room outside a handler):
	// while Redis stalls it fails after about this long instead of
	// waiting for Redis. Default: DefaultEmitTimeout (5s).
	Timeout time.Duration
}

// DefaultEmitTimeout is EmitterConfig.Timeout's default: the server HTTP
// API's bound of a request's Redis work (api.RequestTimeout).
const DefaultEmitTimeout = 5 * time.Second

// Emitter emits, broadcasts, lists and disconnects sockets from any Go
// process, without consuming signals. Its actions apply at once.
type Emitter struct {
	rdb   redis.UniversalClient
	store *session.Store
	keys  bus.Keys
	node  string

	maxRooms, maxRoomBytes int
	timeout                time.Duration
}

// NewEmitter returns an emitter on rdb.
func NewEmitter(rdb redis.UniversalClient, cfg EmitterConfig) *Emitter {
	if cfg.Keys.IsZero() {
		cfg.Keys = bus.NewKeys("", 0)
	}
	if cfg.Node == "" {
		cfg.Node = "emitter"
	}
	if cfg.MaxRooms <= 0 {
		cfg.MaxRooms = session.DefaultMaxRooms
	}
	if cfg.MaxRoomBytes <= 0 {
		cfg.MaxRoomBytes = session.DefaultMaxRoomBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultEmitTimeout
	}
	return &Emitter{
		rdb: rdb, keys: cfg.Keys, node: cfg.Node, maxRooms: cfg.MaxRooms, maxRoomBytes: cfg.MaxRoomBytes, timeout: cfg.Timeout,
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
// across the cluster, partition after partition and 500 at a time (ZRANGE
// BYLEX of the partition's memberships), never one giant read. A socket may
// appear twice if it leaves and joins again during the iteration.
func (e *Emitter) Sockets(ctx context.Context, ns string) iter.Seq2[string, error] {
	return e.store.Sessions(ctx, ns)
}

// RoomSockets iterates over the ids of the sockets in a room.
func (e *Emitter) RoomSockets(ctx context.Context, ns, room string) iter.Seq2[string, error] {
	return e.store.RoomSessions(ctx, ns, room)
}

// Connected reports whether socket sid is connected to namespace ns ("" the
// default): false for a session that ended or never was. The answer may be
// stale by the time the caller acts on it; an action on a socket that is
// gone does nothing.
func (e *Emitter) Connected(ctx context.Context, sid, ns string) (bool, error) {
	ok, err := e.store.InNamespace(ctx, sid, ns)
	if err != nil {
		return false, fmt.Errorf("worker: connected: %w", err)
	}
	return ok, nil
}

// SocketsPage returns one page of the ids of the sockets connected to
// namespace ns (room "") or in room of ns, for callers that page across
// requests (Sockets iterates over all of them). Start with cursor 0 and
// pass the returned next cursor; next is 0 after the last page. count is a
// hint of the page's size (Redis ZSCAN's COUNT over a partition's
// memberships of every room: a partition with few comes whole in one page,
// and a page may be empty before the last). A socket may appear twice if
// memberships change between pages. It returns ErrBadRoom for a room with
// a newline.
func (e *Emitter) SocketsPage(ctx context.Context, ns, room string, cursor uint64, count int) (ids []string, next uint64, err error) {
	if room != "" {
		if err := session.ValidRoom(room); err != nil {
			return nil, 0, err
		}
	}
	ids, next, err = e.store.SessionsPage(ctx, ns, room, cursor, int64(count))
	if err != nil {
		return nil, 0, fmt.Errorf("worker: sockets page: %w", err)
	}
	return ids, next, nil
}

// RoomsPage returns one page of the names of the rooms of namespace ns that
// have members, as SocketsPage pages sockets. It scans each partition's
// room index (ZSCAN MATCH the rooms of ns): count is the rooms of every
// namespace looked at per page, so pages may be empty before the last, and
// a full listing costs a pass over every room; an operator's tool, not a
// hot path.
func (e *Emitter) RoomsPage(ctx context.Context, ns string, cursor uint64, count int) (rooms []string, next uint64, err error) {
	rooms, next, err = e.store.RoomsPage(ctx, ns, cursor, int64(count))
	if err != nil {
		return nil, 0, fmt.Errorf("worker: rooms page: %w", err)
	}
	return rooms, next, nil
}

// Identities returns, in one round trip, what each session of sids kept
// of its handshake and authorization (see Socket.Handshake and
// Socket.AuthData); a session that is gone is absent from the map.
func (e *Emitter) Identities(ctx context.Context, sids []string) (map[string]session.Identity, error) {
	ids, err := e.store.Identities(ctx, sids)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return ids, nil
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

// SendJSON sends v as a JSON message (packet type 4) to the room.
func (r *Room) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("worker: SendJSON: %w", err)
	}
	return r.packet(protocol.Packet{Type: protocol.JSON, Endpoint: r.ns, Data: b})
}

// Except returns the room without socket sid: what it sends reaches every
// member but sid ("" leaves out no one).
func (r *Room) Except(sid string) *Room {
	c := *r
	c.except = sid
	return &c
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
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	_, err := e.store.Apply(ctx, session.Commit{Effects: []session.Effect{eff}})
	return err
}
