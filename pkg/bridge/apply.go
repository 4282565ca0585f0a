package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// apply records the effects of res on c's socket (committed with c's
// signal) and counts the signal. An error means the answer cannot be
// applied: nothing of it is committed.
func (b *Bridge) apply(c *worker.Call, res Result) error {
	typ := string(c.Signal.Kind)
	if res.Error != "" {
		return fmt.Errorf("%w: %.500s", ErrSignalFailed, res.Error)
	}
	for i, e := range res.Effects {
		if err := b.effect(c, e); err != nil {
			if errors.Is(err, worker.ErrRejected) {
				return b.rejected(c, fmt.Errorf("effect %d (%q): %w", i, e.Op, err))
			}
			return fmt.Errorf("%w: effect %d (%q): %w", ErrBadAnswer, i, e.Op, err)
		}
	}
	if res.Reject != nil {
		args, err := array(res.Reject)
		if err != nil {
			return fmt.Errorf("%w: reject: %w", ErrBadAnswer, err)
		}
		if c.Event != nil {
			if err := c.Event.AckRaw(args); err != nil && !errors.Is(err, worker.ErrAlreadyAcked) {
				return fmt.Errorf("%w: reject: %w", ErrBadAnswer, err)
			}
		}
		b.metrics.Signals.WithLabelValues(typ, "rejected").Inc()
		return nil
	}
	b.metrics.Signals.WithLabelValues(typ, "ok").Inc()
	return nil
}

// RejectedAck is the answer a client's data ack gets when an effect of the
// app's answer is refused by a limit of the cluster that the client's
// input ran into (Bridge.rejected), as the gateway answers input it
// rejects.
const RejectedAck = `[{"error":"rejected"}]`

// rejected handles an effect refused by a limit of the cluster (an error
// wrapping worker.ErrRejected: a room name over worker.EmitterConfig.MaxRoomBytes, more
// rooms than a session may join), which comes from the client's input and
// would be refused again on every retry: as a Go handler returning
// worker.ErrRejected is, the signal is committed with the effects before
// the refused one, the rest of its answer is not applied, the client's
// data ack (if it asked for one and has none yet) is answered RejectedAck,
// and it is counted "rejected", not retried.
func (b *Bridge) rejected(c *worker.Call, err error) error {
	if c.Event != nil {
		if aerr := c.Event.AckRaw([]byte(RejectedAck)); aerr != nil && !errors.Is(aerr, worker.ErrAlreadyAcked) {
			return fmt.Errorf("%w: %w", ErrBadAnswer, aerr)
		}
	}
	b.metrics.Signals.WithLabelValues(string(c.Signal.Kind), "rejected").Inc()
	b.rejectLog.Do(func() {
		b.log.Warn("an effect of the app's answer was refused by a cluster limit; the signal is committed without the rest of its answer (logged at most once per 10 s; counted in realtime_bridge_signals_total{result=\"rejected\"})",
			"type", c.Signal.Kind, "sid", session.LogSID(c.Signal.SID), "err", err)
	})
	return nil
}

// array returns raw as a compact JSON array ("[]" when absent).
func array(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return []byte("[]"), nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil || raw[0] != '[' {
		return nil, fmt.Errorf("args %.40q are not a JSON array", raw)
	}
	return b.Bytes(), nil
}

// room is what an emit, send or json effect addresses: a room or the
// namespace (r set), or one socket (s set).
func target(c *worker.Call, e Effect) (r *worker.Room, s *worker.Socket, err error) {
	ns := c.Signal.NS
	if e.Namespace != nil {
		ns = *e.Namespace
	}
	switch {
	case e.Room != "":
		return c.Socket.InRoom(ns, e.Room).Except(e.Except), nil, nil
	case e.Broadcast:
		return c.Socket.Of(ns).Except(e.Except), nil, nil
	case e.Except != "":
		return nil, nil, errors.New("except without room or broadcast")
	}
	return nil, socket(c, e), nil
}

// socket is the socket a join, leave, disconnect or emit_ack effect acts on.
func socket(c *worker.Call, e Effect) *worker.Socket {
	if e.SID == "" && e.Namespace == nil {
		return c.Socket
	}
	sid, ns := c.Signal.SID, c.Signal.NS
	if e.SID != "" {
		sid = e.SID
	}
	if e.Namespace != nil {
		ns = *e.Namespace
	}
	return c.Socket.Other(sid, ns)
}

func (b *Bridge) effect(c *worker.Call, e Effect) error {
	switch e.Op {
	case OpAck:
		if c.Event == nil {
			return errors.New("ack answers an event only")
		}
		args, err := array(e.Args)
		if err != nil {
			return err
		}
		return c.Event.AckRaw(args) // nothing when the client asked for no ack
	case OpEmit, OpSend, OpJSON:
		r, s, err := target(c, e)
		if err != nil {
			return err
		}
		switch e.Op {
		case OpEmit:
			if e.Name == "" {
				return errors.New("emit without a name")
			}
			args, err := array(e.Args)
			if err != nil {
				return err
			}
			if r != nil {
				return r.EmitRaw(e.Name, args)
			}
			return s.EmitRaw(e.Name, args)
		case OpSend:
			var text string
			if err := json.Unmarshal(e.Data, &text); err != nil {
				return fmt.Errorf("send data is not a JSON string: %w", err)
			}
			if r != nil {
				return r.Send(text)
			}
			return s.Send(text)
		default:
			var data bytes.Buffer
			if err := json.Compact(&data, e.Data); err != nil || len(e.Data) == 0 {
				return errors.New("json without data")
			}
			e.Data = data.Bytes()
			if r != nil {
				return r.SendJSON(e.Data)
			}
			return s.SendJSON(e.Data)
		}
	case OpJoin:
		return socket(c, e).Join(e.Room)
	case OpLeave:
		return socket(c, e).Leave(e.Room)
	case OpDisconnect:
		return socket(c, e).Disconnect()
	case OpEmitAck:
		if e.Name == "" {
			return errors.New("emit_ack without a name")
		}
		args, err := array(e.Args)
		if err != nil {
			return err
		}
		return socket(c, e).EmitAckID(e.AckID, e.Name, args)
	}
	return fmt.Errorf("unknown op %.40q", e.Op)
}
