package gateway

import (
	"sync"
	"time"
)

// heartbeatSlots is how many slots the heartbeat wheel has: it ticks every
// heartbeat interval / heartbeatSlots and serves one slot per tick.
const heartbeatSlots = 16

// heartbeatWheel sends 2:: to every stream held here once per heartbeat
// interval (and ends websockets silent for the heartbeat timeout), from one
// goroutine for all of them instead of a timer per connection. A stream joins the slot the wheel served last, so its first
// heartbeat comes one interval (less at most one tick) after it opened and
// then every interval. Streams are kept in intrusive lists (no allocation
// per stream). The goroutine runs only while streams are registered.
type heartbeatWheel struct {
	mu      sync.Mutex
	slots   [heartbeatSlots]*stream // list heads
	next    int                     // the slot the next tick serves
	n       int                     // streams registered
	running bool                    // the ticking goroutine runs
}

// add registers s for heartbeats every interval.
func (w *heartbeatWheel) add(s *stream, interval time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.hbLinked {
		return
	}
	slot := (w.next + heartbeatSlots - 1) % heartbeatSlots
	s.hbSlot, s.hbPrev, s.hbNext, s.hbLinked = slot, nil, w.slots[slot], true
	if s.hbNext != nil {
		s.hbNext.hbPrev = s
	}
	w.slots[slot] = s
	w.n++
	if !w.running {
		w.running = true
		go w.run(max(interval/heartbeatSlots, time.Millisecond))
	}
}

// remove unregisters s; it is a no-op for a stream not registered.
func (w *heartbeatWheel) remove(s *stream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !s.hbLinked {
		return
	}
	if s.hbPrev != nil {
		s.hbPrev.hbNext = s.hbNext
	} else {
		w.slots[s.hbSlot] = s.hbNext
	}
	if s.hbNext != nil {
		s.hbNext.hbPrev = s.hbPrev
	}
	s.hbPrev, s.hbNext, s.hbLinked = nil, nil, false
	w.n--
}

// run ticks until no stream is registered. It queues the heartbeats outside
// the wheel's lock.
func (w *heartbeatWheel) run(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var due []*stream
	for range t.C {
		w.mu.Lock()
		if w.n == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		for s := w.slots[w.next]; s != nil; s = s.hbNext {
			due = append(due, s)
		}
		w.next = (w.next + 1) % heartbeatSlots
		w.mu.Unlock()
		now := time.Now().UnixNano()
		for i, s := range due {
			s.heartbeat(now)
			due[i] = nil
		}
		due = due[:0]
	}
}
