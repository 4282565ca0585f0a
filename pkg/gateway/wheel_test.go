package gateway

import (
	"slices"
	"testing"
	"time"
)

// wheelItem is an element of a test wheel, with its links in its own
// fields as streamConn and pollWaiter have theirs.
type wheelItem struct {
	id         int
	prev, next *wheelItem
	slot       int
	held       bool
}

func (x *wheelItem) wheelLinks() (prev, next **wheelItem, slot *int, held *bool) {
	return &x.prev, &x.next, &x.slot, &x.held
}

func items(n int) []*wheelItem {
	xs := make([]*wheelItem, n)
	for i := range xs {
		xs[i] = &wheelItem{id: i}
	}
	return xs
}

// ids returns the ids of xs, sorted.
func ids(xs []*wheelItem) []int {
	var out []int
	for _, x := range xs {
		out = append(out, x.id)
	}
	slices.Sort(out)
	return out
}

// ticks runs n ticks of w and returns, per tick, the ids it served
// (sorted); it fails the test when a tick finds the wheel empty.
func ticks(t *testing.T, w *wheel[*wheelItem], n int) [][]int {
	t.Helper()
	var served [][]int
	for range n {
		due, ok := w.tick(nil)
		if !ok {
			t.Fatal("tick found the wheel empty")
		}
		served = append(served, ids(due))
	}
	return served
}

// Each element is served once every wheelSlots ticks, starting one turn
// after it was added: it joins the slot the wheel served last, so elements
// added between the same two ticks are served together.
func TestWheelServesEachElementOncePerTurn(t *testing.T) {
	var w wheel[*wheelItem]
	xs := items(4)
	if !w.add(xs[0]) {
		t.Fatal("add to an idle wheel did not say to start it")
	}
	if w.add(xs[1]) {
		t.Fatal("a second add said to start the wheel again")
	}
	got := ticks(t, &w, 3) // x0 and x1 in the last slot; slots 0..2 served
	w.add(xs[2])           // joins slot 2
	got = append(got, ticks(t, &w, wheelSlots-3)...)
	w.add(xs[3]) // joins slot 15, with x0 and x1
	got = append(got, ticks(t, &w, 2*wheelSlots)...)

	want := make([][]int, 3*wheelSlots) // nil: an empty slot
	want[wheelSlots-1] = []int{0, 1}
	for _, turn := range []int{wheelSlots, 2 * wheelSlots} {
		want[turn+2] = []int{2}
		want[turn+wheelSlots-1] = []int{0, 1, 3}
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("tick %d served %v, want %v", i, got[i], want[i])
		}
	}
}

// Removing an element from the head, the middle or the end of its slot's
// list leaves the others served; removing one not held, or adding one held,
// changes nothing.
func TestWheelRemove(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove []int
	}{
		{"head", []int{4}}, // added last: the list's head
		{"middle", []int{2}},
		{"neighbours", []int{2, 1}}, // 1's prev was 2
		{"tail", []int{0}},
		{"all", []int{0, 1, 2, 3, 4}},
		{"twice", []int{3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w wheel[*wheelItem]
			xs := items(5)
			for _, x := range xs {
				w.add(x)
			}
			w.add(xs[1]) // held already: no-op
			for _, i := range tc.remove {
				w.remove(xs[i])
			}
			w.remove(&wheelItem{id: 9}) // never held: no-op
			var want []int
			for _, x := range xs {
				if !slices.Contains(tc.remove, x.id) {
					want = append(want, x.id)
				}
			}
			if w.n != len(want) {
				t.Errorf("n = %d, want %d", w.n, len(want))
			}
			if len(want) == 0 {
				if _, ok := w.tick(nil); ok {
					t.Error("a wheel with nothing held ticked")
				}
				return
			}
			var served []int
			for _, due := range ticks(t, &w, wheelSlots) {
				served = append(served, due...)
			}
			if !slices.Equal(served, want) {
				t.Errorf("served %v in a turn, want %v", served, want)
			}
			if got := ids(w.holding(xs)); !slices.Equal(got, want) {
				t.Errorf("holding %v, want %v", got, want)
			}
		})
	}
}

// Holding an element and letting it go allocate nothing: the links are the
// element's own fields.
func TestWheelAddRemoveAllocateNothing(t *testing.T) {
	var w wheel[*wheelItem]
	xs := items(3)
	w.add(xs[0])
	allocs := testing.AllocsPerRun(100, func() {
		w.add(xs[1])
		w.add(xs[2])
		w.remove(xs[1])
		w.remove(xs[2])
	})
	if allocs != 0 {
		t.Errorf("%v allocations per add and remove, want 0", allocs)
	}
}

// turn serves every element once per interval and returns (no goroutine
// left) at the first tick that finds the wheel empty; the next add starts
// the wheel again.
func TestWheelTurnEndsWhenEmpty(t *testing.T) {
	var w wheel[*wheelItem]
	x := &wheelItem{id: 1}
	served := make(chan []int, wheelSlots)
	run := func() chan struct{} {
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			w.turn(16*time.Millisecond, func(due []*wheelItem) { served <- ids(due) })
		}()
		return ended
	}
	for round := range 2 {
		if !w.add(x) {
			t.Fatalf("round %d: add to an idle wheel did not say to start it", round)
		}
		ended := run()
		for range 2 {
			select {
			case got := <-served:
				if !slices.Equal(got, []int{1}) {
					t.Fatalf("round %d: served %v, want [1]", round, got)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: not served within 5s", round)
			}
		}
		w.remove(x)
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: turn still runs 5s after the wheel emptied", round)
		}
	}
}

// What holding an element costs: an add and a remove, and a tick's walk of
// a slot per element (50,000 connections in 16 slots).
func BenchmarkWheel(b *testing.B) {
	b.Run("add+remove", func(b *testing.B) {
		var w wheel[*wheelItem]
		xs := items(1000)
		w.add(xs[0])
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			x := xs[1+i%999]
			w.add(x)
			w.remove(x)
		}
	})
	b.Run("tick", func(b *testing.B) {
		const perSlot = 50000 / wheelSlots
		var w wheel[*wheelItem]
		for _, x := range items(perSlot) {
			w.add(x)
		}
		var due []*wheelItem
		for b.Loop() {
			w.next = wheelSlots - 1 // the slot they joined
			due, _ = w.tick(due[:0])
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perSlot, "ns/element")
	})
}
