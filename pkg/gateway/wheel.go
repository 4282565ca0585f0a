package gateway

import (
	"sync"
	"time"
)

// wheelSlots is how many slots a wheel has: it ticks every interval /
// wheelSlots and serves one slot per tick.
const wheelSlots = 16

// wheelElem is what a wheel holds: a pointer to a struct that carries the
// wheel's links in fields of its own, so that holding an element allocates
// nothing. wheelLinks returns pointers to those fields: the previous and
// next element in the list of its slot (nil at the ends), its slot, and
// whether the wheel holds it. Only the wheel touches them, under its mutex.
type wheelElem[T any] interface {
	comparable
	wheelLinks() (prev, next *T, slot *int, held *bool)
}

// wheel holds elements in wheelSlots slots and hands them to a serve
// function one slot per tick, so that each element is served once per
// interval, from one goroutine for all of them instead of a timer per
// element. An element joins the slot the wheel served last, so it is first
// served one interval (less at most one tick) after it was added, and then
// every interval until it is removed. Each slot is an intrusive doubly
// linked list through the elements' own fields (wheelElem): add and remove
// cost O(1) and allocate nothing. The ticking goroutine (turn) runs only
// while elements are held: add says when to start it, and it ends at the
// first tick that finds the wheel empty.
//
// The heartbeat wheel (heartbeat.go) and the poll wheel (pollcheck.go) are
// wheels. The zero wheel is empty and ready to use.
type wheel[T wheelElem[T]] struct {
	mu      sync.Mutex
	slots   [wheelSlots]T // list heads
	next    int           // the slot the next tick serves
	n       int           // elements held
	running bool          // turn runs, or its caller was told to start it
}

// add holds x; it is a no-op for an element held already. start is true
// when the wheel was idle: the caller must then run turn (on a goroutine
// of its own). Only one caller is told to start until that turn returns.
func (w *wheel[T]) add(x T) (start bool) {
	var none T
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, next, slot, held := x.wheelLinks()
	if *held {
		return false
	}
	*slot = (w.next + wheelSlots - 1) % wheelSlots
	*prev, *next, *held = none, w.slots[*slot], true
	if *next != none {
		nextPrev, _, _, _ := (*next).wheelLinks()
		*nextPrev = x
	}
	w.slots[*slot] = x
	w.n++
	start = !w.running
	w.running = true
	return start
}

// remove lets x go; it is a no-op for an element not held.
func (w *wheel[T]) remove(x T) {
	var none T
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, next, slot, held := x.wheelLinks()
	if !*held {
		return
	}
	if *prev != none {
		_, prevNext, _, _ := (*prev).wheelLinks()
		*prevNext = *next
	} else {
		w.slots[*slot] = *next
	}
	if *next != none {
		nextPrev, _, _, _ := (*next).wheelLinks()
		*nextPrev = *prev
	}
	*prev, *next, *held = none, none, false
	w.n--
}

// holding returns, in a new slice, the elements of xs the wheel still
// holds.
func (w *wheel[T]) holding(xs []T) []T {
	held := xs[:0:0]
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range xs {
		if _, _, _, h := x.wheelLinks(); *h {
			held = append(held, x)
		}
	}
	return held
}

// turn serves the wheel until a tick finds it empty: every interval /
// wheelSlots (a millisecond at least) it hands serve the elements of the
// next slot (tick), outside the wheel's lock; an empty slot is not handed
// over. serve runs on turn's goroutine, so it should not block: the ticks
// it holds up are dropped (time.Ticker), which delays every later slot.
// due is valid only during the call (turn reuses it); serve copies what it
// keeps.
func (w *wheel[T]) turn(interval time.Duration, serve func(due []T)) {
	t := time.NewTicker(max(interval/wheelSlots, time.Millisecond))
	defer t.Stop()
	var due []T
	for range t.C {
		var ok bool
		if due, ok = w.tick(due[:0]); !ok {
			return
		}
		if len(due) > 0 {
			serve(due)
		}
		clear(due)
	}
}

// tick appends the elements of the next slot to due and moves on to the
// slot after it. When the wheel holds nothing it returns ok false and
// marks the wheel idle, so that the next add starts a new turn.
func (w *wheel[T]) tick(due []T) (_ []T, ok bool) {
	var none T
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.running = false
		return due, false
	}
	for x := w.slots[w.next]; x != none; {
		due = append(due, x)
		_, next, _, _ := x.wheelLinks()
		x = *next
	}
	w.next = (w.next + 1) % wheelSlots
	return due, true
}
