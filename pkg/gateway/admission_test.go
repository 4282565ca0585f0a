package gateway

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gauge records what admission reports to the waiting gauge.
type gauge struct{ v atomic.Int64 }

func (g *gauge) add(d float64) { g.v.Add(int64(d)) }

// A handshake over the rate waits for it within the hold; one the rate
// could only admit after the hold is refused at once and takes nothing.
func TestAdmissionHoldsForTheRate(t *testing.T) {
	var held gauge
	a := newAdmission(10, 100, held.add) // a token every 100 ms, bursts of 10
	for i := 0; i < 10; i++ {
		h := a.newHold(time.Now(), time.Second)
		if r, _ := h.admitRate(context.Background(), true); r != "" || h.waited != 0 {
			t.Fatalf("burst handshake %d: %q after %v", i, r, h.waited)
		}
		h.release()
	}
	// Too short a hold: refused at once, nothing reserved.
	start := time.Now()
	h := a.newHold(start, 20*time.Millisecond)
	r, after := h.admitRate(context.Background(), true)
	h.release()
	if r != resultOverRate || time.Since(start) > 10*time.Millisecond || after <= 0 || after > 100*time.Millisecond {
		t.Fatalf("over the hold: %q (retry after %v) after %v", r, after, time.Since(start))
	}
	// A longer hold: admitted after about one token's time (the refused
	// handshake did not take it).
	start = time.Now()
	h = a.newHold(start, time.Second)
	if r, _ := h.admitRate(context.Background(), true); r != "" {
		t.Fatalf("within the hold: %q", r)
	}
	if w := time.Since(start); w < 50*time.Millisecond || w > 300*time.Millisecond || h.waited < 50*time.Millisecond {
		t.Fatalf("waited %v (recorded %v), want about 100ms", w, h.waited)
	}
	if held.v.Load() != 1 {
		t.Fatalf("gauge %d while holding one", held.v.Load())
	}
	h.release()
	h.release() // idempotent
	if held.v.Load() != 0 || a.waiting.Load() != 0 {
		t.Fatalf("gauge %d, waiting %d after release", held.v.Load(), a.waiting.Load())
	}
	// Not allowed to wait (draining): refused at once.
	h = a.newHold(time.Now(), time.Second)
	if r, _ := h.admitRate(context.Background(), false); r != resultDraining {
		t.Fatalf("draining: %q", r)
	}
	h.release()
}

// Beyond the queue bound a handshake is refused at once; a client that goes
// away frees its place and its reservation.
func TestAdmissionQueueBound(t *testing.T) {
	before := runtime.NumGoroutine()
	var held gauge
	a := newAdmission(5, 2, held.add) // a token every 200 ms, bursts of 5
	for i := 0; i < 5; i++ {
		if r, _ := a.newHold(time.Now(), 5*time.Second).admitRate(context.Background(), true); r != "" {
			t.Fatalf("burst: %q", r)
		}
	}
	// Two handshakes wait, one after the other (reservations at +200ms and
	// +400ms): the queue is full.
	var cancels [2]context.CancelFunc
	var results [2]chan string
	var wg sync.WaitGroup
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i], results[i] = cancel, make(chan string, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := a.newHold(time.Now(), 5*time.Second)
			defer h.release()
			r, _ := h.admitRate(ctx, true)
			results[i] <- r
		}()
		waitUntil(t, "the handshake held", func() bool { return held.v.Load() == int64(i+1) })
	}
	start := time.Now()
	h := a.newHold(start, 5*time.Second)
	r, after := h.admitRate(context.Background(), true)
	h.release()
	if r != resultQueueFull || time.Since(start) > 10*time.Millisecond || after <= 0 {
		t.Fatalf("beyond the queue: %q (retry after %v) after %v", r, after, time.Since(start))
	}
	// Both clients go away, the later first (x/time/rate returns a
	// reservation's token only if no later reservation depends on it).
	for _, i := range []int{1, 0} {
		cancels[i]()
		if r := <-results[i]; r != resultCanceled {
			t.Fatalf("a waiting handshake whose client left: %q", r)
		}
	}
	wg.Wait()
	if held.v.Load() != 0 || a.waiting.Load() != 0 {
		t.Fatalf("gauge %d, waiting %d after the clients left", held.v.Load(), a.waiting.Load())
	}
	// Their reservations were returned: the next handshake waits one
	// token's time, not three.
	start = time.Now()
	h = a.newHold(start, 5*time.Second)
	if r, _ := h.admitRate(context.Background(), true); r != "" {
		t.Fatalf("after the cancellations: %q", r)
	}
	h.release()
	if w := time.Since(start); w > 350*time.Millisecond {
		t.Fatalf("waited %v after two cancelled reservations, want one token's time (200ms)", w)
	}
	waitUntil(t, "the goroutines ended", func() bool { return runtime.NumGoroutine() <= before })
}

// The session store is retried with backoff within the hold; each attempt
// has its own timeout; an unreachable store is given up at the end of the
// hold, not before.
func TestAdmissionStoreRetry(t *testing.T) {
	errDown := errors.New("redis down")
	a := newAdmission(-1, 10, func(float64) {})

	t.Run("recovers within the hold", func(t *testing.T) {
		h := a.newHold(time.Now(), 2*time.Second)
		defer h.release()
		calls, fails := 0, 0
		err := h.retry(context.Background(), time.Second, func(ctx context.Context) error {
			calls++
			if calls < 4 {
				return errDown
			}
			return nil
		}, func(n int, err error) { fails++ })
		if err != nil || calls != 4 || fails != 3 || h.waited <= 0 || h.waited > time.Second {
			t.Fatalf("err %v after %d calls, %d failures, waited %v", err, calls, fails, h.waited)
		}
	})
	t.Run("down for the whole hold", func(t *testing.T) {
		const bound = 700 * time.Millisecond
		start := time.Now()
		h := a.newHold(start, bound)
		defer h.release()
		calls := 0
		err := h.retry(context.Background(), time.Second, func(ctx context.Context) error {
			calls++
			return errDown
		}, func(int, error) {})
		took := time.Since(start)
		if !errors.Is(err, errDown) || took < bound-minAttemptTimeout || took > bound+200*time.Millisecond || calls < 3 {
			t.Fatalf("err %v after %v (%d calls), want about %v", err, took, calls, bound)
		}
	})
	t.Run("attempts that hang are cut by the attempt timeout", func(t *testing.T) {
		const bound, attempt = time.Second, 300 * time.Millisecond
		start := time.Now()
		h := a.newHold(start, bound)
		defer h.release()
		var longest time.Duration
		calls := 0
		err := h.retry(context.Background(), attempt, func(ctx context.Context) error {
			calls++
			s := time.Now()
			<-ctx.Done() // a paused Redis
			longest = max(longest, time.Since(s))
			return ctx.Err()
		}, func(int, error) {})
		took := time.Since(start)
		if err == nil || calls < 2 || longest > attempt+100*time.Millisecond ||
			took < bound-minAttemptTimeout || took > bound+minAttemptTimeout+200*time.Millisecond {
			t.Fatalf("err %v, %d calls, longest %v, took %v", err, calls, longest, took)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		h := a.newHold(time.Now(), 5*time.Second)
		defer h.release()
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := h.retry(ctx, time.Second, func(context.Context) error { return errDown }, func(int, error) {})
		if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
	})
	t.Run("no place in the queue to wait", func(t *testing.T) {
		full := newAdmission(-1, 1, func(float64) {})
		other := full.newHold(time.Now(), time.Second)
		if !other.enqueue() {
			t.Fatal("first place")
		}
		defer other.release()
		h := full.newHold(time.Now(), 5*time.Second)
		defer h.release()
		calls := 0
		start := time.Now()
		err := h.retry(context.Background(), time.Second, func(context.Context) error { calls++; return errDown }, func(int, error) {})
		if !errors.Is(err, errDown) || calls != 1 || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("err %v after %d calls in %v", err, calls, time.Since(start))
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1500 * time.Millisecond, "2"}, {10 * time.Second, "10"}} {
		if got := retryAfter(c.d); got != c.want {
			t.Errorf("retryAfter(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
