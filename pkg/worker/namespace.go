package worker

import (
	"context"
	"encoding/json"

	"github.com/realtime/realtime/pkg/bus"
)

// Handler types. A handler's error (or panic) leaves its signal
// unacknowledged and uncommitted; it is handled again, up to the worker's
// MaxAttempts, then dead-lettered.
type (
	ConnectHandler    func(ctx context.Context, s *Socket) error
	DisconnectHandler func(ctx context.Context, s *Socket, reason bus.DisconnectReason) error
	MessageHandler    func(ctx context.Context, s *Socket, msg string) error
	JSONHandler       func(ctx context.Context, s *Socket, data json.RawMessage) error
	EventHandler      func(ctx context.Context, s *Socket, ev *Event) error
)

// Namespace holds the handlers of one namespace.
type Namespace struct {
	name       string
	connect    ConnectHandler
	disconnect DisconnectHandler
	message    MessageHandler
	json       JSONHandler
	anyEvent   EventHandler
	events     map[string]EventHandler
}

// OnConnect is called when a socket connects to the namespace.
func (n *Namespace) OnConnect(h ConnectHandler) { n.connect = h }

// OnDisconnect is called once per connect, with the reason (one of the bus
// package's Reason constants, or what another gateway implementation
// wrote).
func (n *Namespace) OnDisconnect(h DisconnectHandler) { n.disconnect = h }

// OnMessage is called for each message (socket.send on the client).
func (n *Namespace) OnMessage(h MessageHandler) { n.message = h }

// OnJSON is called for each JSON message (socket.json.send on the client).
func (n *Namespace) OnJSON(h JSONHandler) { n.json = h }

// OnEvent is called for events named name (django-realtime's
// socket_client_event_by_type).
func (n *Namespace) OnEvent(name string, h EventHandler) { n.events[name] = h }

// OnAnyEvent is called for events no OnEvent handler took.
func (n *Namespace) OnAnyEvent(h EventHandler) { n.anyEvent = h }

// takes reports whether the namespace has a handler for the signal (a
// connect or disconnect needs none).
func (n *Namespace) takes(sig bus.Signal) bool {
	switch sig.Kind {
	case bus.KindConnect, bus.KindDisconnect:
		return true
	case bus.KindMessage:
		return n.message != nil
	case bus.KindJSON:
		return n.json != nil
	case bus.KindEvent:
		return n.events[sig.Name] != nil || n.anyEvent != nil
	}
	return false
}

// callHandler calls the handler the namespace has for the signal's kind
// (and an event's name). handled is false for a message, JSON message or
// event that no handler of this namespace takes (a connect or disconnect
// without a handler needs none).
func (n *Namespace) callHandler(ctx context.Context, s *Socket, sig bus.Signal) (handled bool, err error) {
	switch sig.Kind {
	case bus.KindConnect:
		if n.connect != nil {
			return true, n.connect(ctx, s)
		}
		return true, nil
	case bus.KindDisconnect:
		if n.disconnect != nil {
			return true, n.disconnect(ctx, s, sig.Reason)
		}
		return true, nil
	case bus.KindMessage:
		if n.message != nil {
			return true, n.message(ctx, s, sig.Data)
		}
	case bus.KindJSON:
		if n.json != nil {
			return true, n.json(ctx, s, json.RawMessage(sig.Data))
		}
	case bus.KindEvent:
		args := Args(sig.Args)
		if len(args) == 0 {
			args = Args("[]")
		}
		ev := &Event{Name: sig.Name, Args: args, Signal: sig, s: s}
		if h := n.events[sig.Name]; h != nil {
			return true, h(ctx, s, ev)
		}
		if n.anyEvent != nil {
			return true, n.anyEvent(ctx, s, ev)
		}
	}
	return false, nil
}
