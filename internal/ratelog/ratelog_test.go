package ratelog

import (
	"sync"
	"testing"
	"time"
)

// One line per period gets through, on a clock of the test's own; the next
// one let through says how many were held back.
func TestLimiter(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	for i, st := range []struct {
		at       time.Duration
		ok       bool
		unlogged int64
	}{
		{0, true, 0},
		{10 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{6 * time.Second, true, 0},
	} {
		if ok, unlogged := l.Allow(t0.Add(st.at), time.Second); ok != st.ok || unlogged != st.unlogged {
			t.Errorf("#%d at %v: Allow = %v, %d; want %v, %d", i, st.at, ok, unlogged, st.ok, st.unlogged)
		}
	}
}

// Callers racing within one period: exactly one gets through, and the next
// period's line counts every other one.
func TestLimiterConcurrent(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	through := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow(t0, time.Second); ok {
				mu.Lock()
				through++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if through != 1 {
		t.Fatalf("%d lines through in one period, want 1", through)
	}
	if ok, unlogged := l.Allow(t0.Add(time.Second), time.Second); !ok || unlogged != 49 {
		t.Fatalf("next period: %v, %d unlogged; want true, 49", ok, unlogged)
	}
}
