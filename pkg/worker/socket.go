package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// recorder collects a handler's effects for its signal's commit.
type recorder struct {
	effects []session.Effect
	// joins are the rooms (bus.RoomMember) joined by sid in the batch this
	// handler's signal is committed with, not yet in Redis, for the
	// MaxRooms check; shared by the recorders of one partition's batch.
	joins map[string]map[string]bool
	acks  []pendingKey // callbacks registered by this handler, dropped if it fails
}

// Socket is one client session in one namespace. In a handler, its actions
// are committed with the signal; from an Emitter (or in an ack callback),
// they apply at once.
type Socket struct {
	id  string
	ns  string
	em  *Emitter
	w   *Worker   // nil for an Emitter's socket
	rec *recorder // nil: apply at once
}

// ID returns the session id.
func (s *Socket) ID() string { return s.id }

// Namespace returns the namespace ("" for the default one).
func (s *Socket) Namespace() string { return s.ns }

// Handshake returns what the session kept of its handshake request:
// headers (those the gateway's -handshake-headers names, within
// -max-handshake-bytes), query, remote address and time.
func (s *Socket) Handshake(ctx context.Context) (session.Handshake, error) {
	hs, err := s.em.store.Handshake(ctx, s.id)
	if err != nil {
		return hs, fmt.Errorf("worker: handshake of %s: %w", session.LogSID(s.id), err)
	}
	return hs, nil
}

// AuthData unmarshals into v the data the OnAuthorize hook kept with the
// session (it leaves v alone when there is none).
func (s *Socket) AuthData(ctx context.Context, v any) error {
	raw, err := s.em.store.AuthData(ctx, s.id)
	if err != nil {
		return fmt.Errorf("worker: auth data of %s: %w", session.LogSID(s.id), err)
	}
	if raw == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("worker: auth data of %s: %w", session.LogSID(s.id), err)
	}
	return nil
}

func (s *Socket) deliver(p protocol.Packet) error {
	p.Endpoint = s.ns
	return s.em.effect(s.rec, session.DeliverEffect(s.id, string(protocol.Encode(p))))
}

// Send sends a message (packet type 3).
func (s *Socket) Send(msg string) error {
	return s.deliver(protocol.Packet{Type: protocol.Message, Data: []byte(msg)})
}

// SendJSON sends v as a JSON message (packet type 4).
func (s *Socket) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("worker: SendJSON: %w", err)
	}
	return s.deliver(protocol.Packet{Type: protocol.JSON, Data: b})
}

// Emit sends event name with args (each marshalled to JSON;
// json.RawMessage passes through; a single Args value is the whole list).
func (s *Socket) Emit(name string, args ...any) error {
	a, err := marshalArgs(args)
	if err != nil {
		return err
	}
	return s.EmitRaw(name, a)
}

// EmitRaw sends event name with args, a JSON array.
func (s *Socket) EmitRaw(name string, args []byte) error {
	return s.deliver(protocol.Packet{Type: protocol.Event, Data: protocol.AppendEvent(nil, name, args)})
}

// AckFunc receives the client's answer to an EmitAck: its arguments (a JSON
// array), or ErrAckTimeout. s is usable for further actions, which apply at
// once.
type AckFunc func(ctx context.Context, s *Socket, args json.RawMessage, err error)

// EmitAck sends event name with args and asks the client to acknowledge it;
// cb gets the client's answer, or ErrAckTimeout at ctx's deadline (30s if
// ctx has none).
func (s *Socket) EmitAck(ctx context.Context, cb AckFunc, name string, args ...any) error {
	if s.w == nil {
		return ErrNoReplies
	}
	a, err := marshalArgs(args)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	id := s.w.register(s.id, s.ns, timeout, cb)
	if s.rec != nil {
		s.rec.acks = append(s.rec.acks, pendingKey{s.id, id})
	}
	p := protocol.Packet{Type: protocol.Event, ID: id, HasID: true, AckData: true, Endpoint: s.ns,
		Data: protocol.AppendEvent(nil, name, a)}
	if err := s.em.effect(s.rec, session.DeliverEffect(s.id, string(protocol.Encode(p)))); err != nil {
		return err
	}
	return s.em.effect(s.rec, session.AckEffect(s.id, id, s.w.replyChannel))
}

// BroadcastSend sends a message to every socket of the namespace but this one.
func (s *Socket) BroadcastSend(msg string) error {
	return s.broadcast("").Send(msg)
}

// BroadcastEmit emits to every socket of the namespace but this one.
func (s *Socket) BroadcastEmit(name string, args ...any) error {
	return s.broadcast("").Emit(name, args...)
}

// To addresses the members of room (in this namespace) but this socket.
func (s *Socket) To(room string) *Room { return s.broadcast(room) }

// In addresses every member of room (in this namespace), this socket too.
func (s *Socket) In(room string) *Room {
	return &Room{em: s.em, rec: s.rec, ns: s.ns, room: room}
}

func (s *Socket) broadcast(room string) *Room {
	return &Room{em: s.em, rec: s.rec, ns: s.ns, room: room, except: s.id}
}

// Join puts the socket in room (rooms are per namespace). It fails with
// ErrBadRoom for an empty name or one with a newline, ErrRoomNameTooLong
// for a name over MaxRoomBytes, and ErrTooManyRooms for a room that would
// put the session in more than MaxRooms rooms (counted as committed, plus
// those joined by the handlers of signals committed in the same batch);
// these change nothing, and the last two
// (which wrap ErrRejected) are counted in
// realtime_worker_rooms_refused_total and logged, at most once per 10 s.
// The count is read from Redis (one round trip): a session's signals are
// handled one at a time, so no other handler of it joins meanwhile.
func (s *Socket) Join(room string) error {
	if err := session.ValidRoom(room); err != nil {
		return err
	}
	if len(room) > s.em.maxRoomBytes {
		return s.roomRefused("room_name_too_long", ErrRoomNameTooLong, len(room))
	}
	member := bus.RoomMember(s.ns, room)
	var pending map[string]bool // joined in this batch, not yet committed
	if s.rec != nil {
		if s.rec.joins == nil {
			s.rec.joins = map[string]map[string]bool{}
		}
		pending = s.rec.joins[s.id]
	}
	if !pending[member] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, in, err := s.em.store.RoomCount(ctx, s.id, s.ns, room)
		cancel()
		if err != nil {
			return fmt.Errorf("worker: join: %w", err)
		}
		n += len(pending)
		if !in && n >= s.em.maxRooms {
			return s.roomRefused("too_many_rooms", ErrTooManyRooms, n)
		}
		if s.rec != nil && !in {
			if pending == nil {
				pending = map[string]bool{}
				s.rec.joins[s.id] = pending
			}
			pending[member] = true
		}
	}
	return s.em.effect(s.rec, session.JoinEffect(s.id, s.ns, room))
}

// roomRefused counts and logs a refused join (reason: the label of
// realtime_worker_rooms_refused_total) and returns err; n is the room
// count or the name's length.
func (s *Socket) roomRefused(reason string, err error, n int) error {
	if w := s.w; w != nil {
		w.metrics.RoomsRefused.WithLabelValues(reason).Inc()
		w.roomLog.Do(func() {
			w.log.Info("join refused", "reason", reason, "sid", session.LogSID(s.id), "ns", s.ns,
				"n", n, "max_rooms", s.em.maxRooms, "max_room_bytes", s.em.maxRoomBytes)
		})
	}
	return err
}

// Leave takes the socket out of room.
func (s *Socket) Leave(room string) error {
	if err := session.ValidRoom(room); err != nil {
		return err
	}
	return s.em.effect(s.rec, session.LeaveEffect(s.id, s.ns, room))
}

// Rooms returns the rooms the socket is in, in this namespace, as committed
// (a Join in the running handler shows after its commit).
func (s *Socket) Rooms(ctx context.Context) ([]string, error) {
	rooms, err := s.em.store.Rooms(ctx, s.id, s.ns)
	if err != nil {
		return nil, fmt.Errorf("worker: rooms: %w", err)
	}
	return rooms, nil
}

// Disconnect disconnects the socket: in the default namespace the whole
// session ends (the client gets 0:: and does not reconnect); in another
// namespace only that namespace (the client gets 0::/ns).
func (s *Socket) Disconnect() error {
	if s.ns == "" {
		return s.em.effect(s.rec, session.EndEffect(s.id, bus.ReasonServer, "0::"))
	}
	return s.em.effect(s.rec, session.LeaveNamespaceEffect(s.id, s.ns, bus.ReasonServer, "0::"+s.ns))
}

// Args is an argument list as a JSON array, e.g. `[1,"two"]`. Given alone
// to Ack, Reject, Emit, BroadcastEmit or EmitAck, it is the whole list: the
// client's callback or handler gets each element as its own argument, so
// ev.Ack(ev.Args) answers with the arguments the client sent. Anywhere
// else (next to other arguments, or inside a value) it is one argument,
// the array itself.
type Args json.RawMessage

// MarshalJSON returns the array as it is ("[]" when empty).
func (a Args) MarshalJSON() ([]byte, error) {
	if len(a) == 0 {
		return []byte("[]"), nil
	}
	return a, nil
}

// Event is a client's event.
type Event struct {
	// Name is the event name.
	Name string
	// Args holds the arguments as a JSON array ("[]" when none).
	Args Args
	// Signal is the signal that carried the event; Signal.ID is unique.
	Signal bus.Signal

	s     *Socket
	acked bool
}

// Decode unmarshals the arguments, in order, into vs (fewer vs than
// arguments is fine; extra vs are left alone).
func (e *Event) Decode(vs ...any) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(e.Args, &raw); err != nil {
		return fmt.Errorf("worker: event %q args: %w", e.Name, err)
	}
	for i, v := range vs {
		if i >= len(raw) {
			break
		}
		if err := json.Unmarshal(raw[i], v); err != nil {
			return fmt.Errorf("worker: event %q arg %d: %w", e.Name, i, err)
		}
	}
	return nil
}

// Acknowledgeable reports whether the client asked for a data ack.
func (e *Event) Acknowledgeable() bool { return e.Signal.HasID && e.Signal.AckData }

// Acknowledged reports whether Ack was called.
func (e *Event) Acknowledged() bool { return e.acked }

// Ack answers the client's ack request with args (each JSON-marshalled; a
// single Args value is the whole list, so ev.Ack(ev.Args) answers with what
// the client sent). When the client asked for no ack it sends nothing and
// returns nil (check Acknowledgeable to tell); a second call returns
// ErrAlreadyAcked and sends nothing.
func (e *Event) Ack(args ...any) error {
	a, err := marshalArgs(args)
	if err != nil {
		return err
	}
	return e.AckRaw(a)
}

// AckRaw answers with args, a JSON array.
func (e *Event) AckRaw(args []byte) error {
	if !e.Acknowledgeable() {
		return nil
	}
	if e.acked {
		return ErrAlreadyAcked
	}
	e.acked = true
	return e.s.deliver(protocol.Packet{Type: protocol.Ack,
		Data: protocol.AppendAck(nil, e.Signal.MsgID, args, true)})
}

// Reject answers invalid client input: it acks the client with args (as
// Ack does; nothing when the client asked for no ack or was acked already)
// and returns an error wrapping ErrRejected, for the handler to return.
// The worker then commits what the handler did (the ack included) at once
// and moves on: a rejected signal is not retried, is counted with result
// "rejected", and the session's next signal does not wait behind it.
//
//	var n int
//	if err := ev.Decode(&n); err != nil {
//		return ev.Reject("expected a number")
//	}
func (e *Event) Reject(args ...any) error {
	if err := e.Ack(args...); err != nil && !errors.Is(err, ErrAlreadyAcked) {
		return err
	}
	return fmt.Errorf("%w: event %q", ErrRejected, logName(e.Name))
}

// marshalArgs encodes args as a JSON array: each arg one element, except a
// single Args value, which is the whole array.
func marshalArgs(args []any) ([]byte, error) {
	if len(args) == 1 {
		if a, ok := args[0].(Args); ok {
			if !json.Valid(a) || len(a) == 0 || a[0] != '[' {
				return nil, fmt.Errorf("worker: Args %.40q is not a JSON array", a)
			}
			return a, nil
		}
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, a := range args {
		if i > 0 {
			b.WriteByte(',')
		}
		raw, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("worker: argument %d: %w", i, err)
		}
		b.Write(raw)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}
