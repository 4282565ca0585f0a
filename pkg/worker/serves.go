package worker

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"github.com/realtime/realtime/pkg/bus"
)

// Rolling deploys: what a worker serves, and handing a partition over to a
// worker of the same app that serves a signal this one does not
// (docs/redis.md, "Rolling deploys"; the bus side is in pkg/bus's
// handover.go).

// servesVersion is the version of the served description a worker
// publishes; a description of another version is ignored.
const servesVersion = 1

// served is what a worker serves, as it publishes it for the other workers
// of its app (bus.ConsumerConfig.Serves), e.g.
//
//	{"v":1,"namespaces":{"":{"events":["echo","join"],"message":true},"/chat":{"any_event":true}}}
//	{"v":1,"all":true}   (an OnBatch worker, such as the HTTP bridge)
type served struct {
	Version    int                 `json:"v"`
	All        bool                `json:"all,omitempty"`
	Namespaces map[string]servedNS `json:"namespaces,omitempty"`
}

// servedNS is what a worker serves of one namespace: its connects and
// disconnects always, and the events, messages and JSON messages it has
// handlers for.
type servedNS struct {
	Events   []string `json:"events,omitempty"`
	AnyEvent bool     `json:"any_event,omitempty"`
	Message  bool     `json:"message,omitempty"`
	JSON     bool     `json:"json,omitempty"`
}

// takes reports whether a worker serving d handles sig.
func (d *served) takes(sig bus.Signal) bool {
	if d.All {
		return true
	}
	ns, ok := d.Namespaces[sig.NS]
	if !ok {
		return false
	}
	switch sig.Kind {
	case bus.KindConnect, bus.KindDisconnect:
		return true
	case bus.KindMessage:
		return ns.Message
	case bus.KindJSON:
		return ns.JSON
	case bus.KindEvent:
		return ns.AnyEvent || slices.Contains(ns.Events, sig.Name)
	}
	return false
}

// describe returns what the worker serves now, as published.
func (w *Worker) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := served{Version: servesVersion}
	switch {
	case w.batch != nil && w.batchNS == nil:
		d.All = true
	case w.batch != nil:
		d.Namespaces = make(map[string]servedNS, len(w.batchNS))
		for name := range w.batchNS {
			d.Namespaces[name] = servedNS{AnyEvent: true, Message: true, JSON: true}
		}
	default:
		d.Namespaces = make(map[string]servedNS, len(w.namespaces))
		for name, ns := range w.namespaces {
			d.Namespaces[name] = servedNS{
				Events:   slices.Sorted(maps.Keys(ns.events)),
				AnyEvent: ns.anyEvent != nil,
				Message:  ns.message != nil,
				JSON:     ns.json != nil,
			}
		}
	}
	b, _ := json.Marshal(d)
	return string(b)
}

// maxPeerDescriptions bounds the parsed descriptions a worker keeps.
const maxPeerDescriptions = 64

// peer returns the parsed description raw (nil if unreadable or of another
// version), from a small cache: peers publish the same one every second.
func (w *Worker) peer(raw string) *served {
	w.peersMu.Lock()
	defer w.peersMu.Unlock()
	if d, ok := w.peerCache[raw]; ok {
		return d
	}
	var d *served
	if err := json.Unmarshal([]byte(raw), &d); err != nil || d == nil || d.Version != servesVersion {
		d = nil
	}
	if w.peerCache == nil || len(w.peerCache) >= maxPeerDescriptions {
		w.peerCache = map[string]*served{}
	}
	w.peerCache[raw] = d
	return d
}

// handOverTo returns the live worker of the app, first by name, that serves
// sig (which this one does not), or "" if none does. It runs for every
// signal this worker does not serve (another app's namespace, on every
// worker of every app): peers that publish what this one does are skipped
// without parsing, and nothing is allocated.
func (w *Worker) handOverTo(sig bus.Signal) string {
	own := ""
	if s := w.serves.Load(); s != nil {
		own = *s
	}
	to := ""
	for name, raw := range w.consumer.Peers() {
		if raw == own || (to != "" && name >= to) {
			continue
		}
		if d := w.peer(raw); d != nil && d.takes(sig) {
			to = name
		}
	}
	return to
}

// handOverError is dispatch's answer for a signal that another worker of
// the app serves and this one does not.
type handOverError struct{ to string }

func (e *handOverError) Error() string { return "served by worker " + e.to }

// handOverOf returns the worker a dispatch error hands the signal over to,
// or "".
func handOverOf(err error) string {
	var h *handOverError
	if errors.As(err, &h) {
		return h.to
	}
	return ""
}
