package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/protocol"
	"github.com/realtime/realtime/pkg/session"
)

// Call is one signal given to a BatchHandler, with the Socket whose actions
// are committed together with the signal's acknowledgement (as a handler's
// are).
type Call struct {
	// Signal is the signal (any kind but authorize, which the worker
	// answers itself).
	Signal bus.Signal
	// Socket is the signal's session in the signal's namespace.
	Socket *Socket
	// Event is the client's event for an event signal, else nil.
	Event *Event
}

// BatchHandler handles a run of one partition's signals, in stream order,
// in one go (for a bridge that hands them to another process at once). It
// returns how many calls, from the start, it handled: their recorded
// actions are committed with their acknowledgements. If handled <
// len(calls) and err is nil, the worker calls it again with the rest; if
// err is not nil, calls[handled] failed: its actions and those of every
// later call are dropped, and calls[handled] is handled again after the
// worker's retry backoff (up to Config.MaxAttempts, then dead-lettered), as
// a handler's error is. Invalid client input is handled, not an error (see
// Event.Reject; the handler counts it).
type BatchHandler func(ctx context.Context, calls []*Call) (handled int, err error)

// OnBatch makes h handle every signal of the namespaces given ("" the
// default one), or of every namespace when none is given, instead of the
// Namespace handlers (an authorize signal is still answered by the
// OnAuthorize hook). The signals of other namespaces are another app's:
// counted "not_served" and left alone as a worker of an app leaves
// namespaces it has no handlers for (Config.App), or handed over to a
// worker of the same app that serves them (a rolling deploy). Set it before
// Run.
func (w *Worker) OnBatch(h BatchHandler, namespaces ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.batch = h
	w.batchNS = nil
	if len(namespaces) > 0 {
		w.batchNS = map[string]bool{}
		for _, ns := range namespaces {
			w.batchNS[ns] = true
		}
	}
}

// runBatch hands the signals of b to h, runs of them at a time (an
// authorize signal between them, or one of a namespace outside served, is
// dispatched on its own), and returns the commits of the signals handled
// and the error of the first that failed. served nil means every
// namespace.
func (w *Worker) runBatch(ctx context.Context, h BatchHandler, served map[string]bool, stream string, sigs []bus.Signal) (commits []session.Commit, recs []*recorder, failed error) {
	alone := func(sig bus.Signal) bool { return sig.Kind == bus.KindAuthorize || (served != nil && !served[sig.NS]) }
	for len(sigs) > 0 {
		if alone(sigs[0]) {
			rec := &recorder{}
			if err := w.dispatch(ctx, sigs[0], rec); err != nil {
				return commits, recs, fmt.Errorf("signal %s (%s): %w", sigs[0].ID, sigs[0].Kind, err)
			}
			commits = append(commits, session.Commit{Stream: stream, Group: w.group(), ID: sigs[0].ID, Effects: rec.effects})
			recs = append(recs, rec)
			sigs = sigs[1:]
			continue
		}
		end := 0
		for end < len(sigs) && !alone(sigs[end]) {
			end++
		}
		calls := make([]*Call, end)
		callRecs := make([]*recorder, end)
		for i, sig := range sigs[:end] {
			rec := &recorder{}
			s := &Socket{id: sig.SID, ns: sig.NS, em: w.Emitter, w: w, rec: rec}
			c := &Call{Signal: sig, Socket: s}
			if sig.Kind == bus.KindEvent {
				args := Args(sig.Args)
				if len(args) == 0 {
					args = Args("[]")
				}
				c.Event = &Event{Name: sig.Name, Args: args, Signal: sig, s: s}
			}
			calls[i], callRecs[i] = c, rec
		}
		start := time.Now()
		n, err := safeBatch(ctx, h, calls)
		n = min(max(n, 0), end)
		took := time.Since(start)
		for i, sig := range sigs[:n] {
			commits = append(commits, session.Commit{Stream: stream, Group: w.group(), ID: sig.ID, Effects: callRecs[i].effects})
			recs = append(recs, callRecs[i])
			w.metrics.Signals.WithLabelValues(string(sig.Kind), "ok").Inc()
		}
		if n > 0 {
			w.metrics.HandlerSeconds.WithLabelValues("batch", "").Observe(took.Seconds())
		}
		if err != nil || n == 0 {
			for _, rec := range callRecs[n:] {
				w.drop(rec)
			}
			if err == nil {
				err = fmt.Errorf("batch handler handled none of %d signals", end)
			}
			sig := sigs[n]
			w.metrics.Signals.WithLabelValues(string(sig.Kind), "error").Inc()
			return commits, recs, fmt.Errorf("signal %s (%s %q): %w", sig.ID, sig.Kind, sig.Name, err)
		}
		sigs = sigs[n:]
	}
	return commits, recs, nil
}

func safeBatch(ctx context.Context, h BatchHandler, calls []*Call) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("batch handler panicked: %v", r)
		}
	}()
	return h(ctx, calls)
}

// Other returns session sid in namespace ns ("" default): its actions are
// committed with this socket's signal, as this socket's are (in a handler;
// from an Emitter they apply at once). EmitAck is not available on it.
func (s *Socket) Other(sid, ns string) *Socket {
	return &Socket{id: sid, ns: ns, em: s.em, rec: s.rec}
}

// Of addresses every socket of namespace ns ("" default), committed with
// this socket's signal; narrow it with Except.
func (s *Socket) Of(ns string) *Room {
	return &Room{em: s.em, rec: s.rec, ns: ns}
}

// InRoom addresses every member of room in namespace ns, committed with
// this socket's signal; narrow it with Except.
func (s *Socket) InRoom(ns, room string) *Room {
	return &Room{em: s.em, rec: s.rec, ns: ns, room: room}
}

// MaxAckID is the largest ack id EmitAckID takes: 2^53-1, exact in
// JavaScript.
const MaxAckID = 1<<53 - 1

// EmitAckID sends event name with args (a JSON array) and asks the client
// to acknowledge it with ack id id (1..MaxAckID), registering no callback:
// the client's answer arrives as an ack signal (bus.KindAck, MsgID id), which
// a BatchHandler receives (Namespace handlers do not; use EmitAck there).
// The caller chooses id; the same id twice for one session is ambiguous.
func (s *Socket) EmitAckID(id uint64, name string, args []byte) error {
	if id == 0 || id > MaxAckID {
		return fmt.Errorf("worker: ack id %d not in 1..%d", id, uint64(MaxAckID))
	}
	if !json.Valid(args) || len(args) == 0 || args[0] != '[' {
		return fmt.Errorf("worker: EmitAckID args %.40q are not a JSON array", args)
	}
	p := protocol.Packet{Type: protocol.Event, ID: id, HasID: true, AckData: true, Endpoint: s.ns,
		Data: protocol.AppendEvent(nil, name, args)}
	return s.em.effect(s.rec, session.DeliverEffect(s.id, string(protocol.Encode(p))))
}
