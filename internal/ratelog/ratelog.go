// Package ratelog keeps log lines that clients can cause (bad input,
// rejections, retries) to a few per period: a Limiter lets one line through
// per period and counts those it held back, so the next line let through
// can say how many went unlogged (unlogged=). Counting what happened is
// the metrics' job; the limiter bounds only the log.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Limiter lets one log line through per period. The zero value is ready
// to use; it is safe for concurrent use.
type Limiter struct {
	next    atomic.Int64 // unix ns before which lines are held back
	skipped atomic.Int64 // lines held back since the last one let through
}

// Allow reports whether a line may be logged at now, at most one per
// every, and, when it may, how many were held back since the last one let
// through.
func (l *Limiter) Allow(now time.Time, every time.Duration) (ok bool, unlogged int64) {
	next := l.next.Load()
	if now.UnixNano() < next || !l.next.CompareAndSwap(next, now.Add(every).UnixNano()) {
		l.skipped.Add(1)
		return false, 0
	}
	return true, l.skipped.Swap(0)
}
