// Package echo is the echo app: the contract the conformance and end-to-end
// tests rely on, in the default namespace and in /chat. It is also the
// smallest complete example of a worker.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"

	"github.com/realtime/realtime/pkg/session"
	"github.com/realtime/realtime/pkg/worker"
)

// Namespaces are the namespaces the echo app serves.
var Namespaces = []string{"", "/chat"}

// Register installs the echo handlers on w.
//
// With gateways started with -authorize, the echo app also authorizes
// handshakes: ?deny=1 is refused, ?fail=1 makes the hook fail, and any other
// handshake is allowed with {"user": <the user query parameter>} kept with
// the session (the event authdata acks with it).
func Register(w *worker.Worker) {
	w.OnAuthorize(func(ctx context.Context, hs session.Handshake) (worker.Authorization, error) {
		q, _ := url.ParseQuery(hs.Query)
		switch {
		case q.Get("deny") == "1":
			return worker.Authorization{Reason: "denied by the query"}, nil
		case q.Get("fail") == "1":
			return worker.Authorization{}, errors.New("the authorization backend failed")
		}
		return worker.Authorization{Allow: true, Data: map[string]string{"user": q.Get("user")}}, nil
	})
	for _, name := range Namespaces {
		register(w, w.Namespace(name))
	}
}

func register(w *worker.Worker, ns *worker.Namespace) {
	ns.OnConnect(func(ctx context.Context, s *worker.Socket) error {
		return s.Emit("welcome", welcome{SID: s.ID(), NS: s.Namespace()})
	})
	ns.OnMessage(func(ctx context.Context, s *worker.Socket, msg string) error {
		return s.Send(msg)
	})
	ns.OnJSON(func(ctx context.Context, s *worker.Socket, data json.RawMessage) error {
		return s.SendJSON(data)
	})
	ns.OnEvent("echo", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		if ev.Acknowledgeable() {
			return ev.Ack(ev.Args)
		}
		return s.Emit("echo", ev.Args)
	})
	ns.OnEvent("join", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var room string
		if err := ev.Decode(&room); err != nil {
			return ackErr(ev, err)
		}
		if err := s.Join(room); err != nil {
			return ackErr(ev, err)
		}
		return ack(ev, true)
	})
	ns.OnEvent("leave", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var room string
		if err := ev.Decode(&room); err != nil {
			return ackErr(ev, err)
		}
		if err := s.Leave(room); err != nil {
			return ackErr(ev, err)
		}
		return ack(ev, true)
	})
	ns.OnEvent("to", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var room string
		var payload json.RawMessage
		if err := ev.Decode(&room, &payload); err != nil {
			return ackErr(ev, err)
		}
		// The payload only: a session id is its session's bearer token
		// (anyone holding it can send and poll as the client), so it is
		// never sent to other clients.
		if err := s.To(room).Emit("relay", payload); err != nil {
			return ackErr(ev, err)
		}
		return ack(ev, true)
	})
	ns.OnEvent("shout", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var payload json.RawMessage
		if err := ev.Decode(&payload); err != nil {
			return ackErr(ev, err)
		}
		if err := s.BroadcastEmit("shout", payload); err != nil {
			return err
		}
		return ack(ev, true)
	})
	ns.OnEvent("whoami", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		return ack(ev, s.ID())
	})
	ns.OnEvent("ask", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var q json.RawMessage
		if err := ev.Decode(&q); err != nil {
			return ackErr(ev, err)
		}
		return s.EmitAck(ctx, func(ctx context.Context, s *worker.Socket, args json.RawMessage, err error) {
			if err != nil {
				return // the client did not answer; nothing to relay
			}
			var a []json.RawMessage
			if json.Unmarshal(args, &a) == nil && len(a) > 0 {
				_ = s.Emit("answer", a[0])
			}
		}, "question", q)
	})
	ns.OnEvent("count", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		n, err := w.Count(ctx, s.Namespace())
		if err != nil {
			return err
		}
		return ack(ev, n)
	})
	ns.OnEvent("authdata", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		var data map[string]string
		if err := s.AuthData(ctx, &data); err != nil {
			return err
		}
		return ack(ev, data)
	})
	ns.OnEvent("bye", func(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
		return s.Disconnect()
	})
}

// welcome is the payload of the welcome event, in the reference's field order.
type welcome struct {
	SID string `json:"sid"`
	NS  string `json:"ns"`
}

// ack answers the event when the client asked for it.
func ack(ev *worker.Event, args ...any) error {
	if !ev.Acknowledgeable() {
		return nil
	}
	return ev.Ack(args...)
}

// ackErr answers a bad request with an error object (when the client asked
// for an ack) and rejects it: a malformed argument would fail every retry,
// so it is not retried (counted "rejected", see worker.Event.Reject).
func ackErr(ev *worker.Event, err error) error {
	return ev.Reject(map[string]string{"error": err.Error()})
}
