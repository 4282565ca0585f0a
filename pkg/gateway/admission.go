package gateway

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Admission control for handshakes.
//
// A refused first handshake is fatal to socket.io-client 0.9: on any status
// but 200 it emits 'error' with the body and never tries again (it retries
// handshakes only while reconnecting a session it had). So excess handshakes
// are held, not refused: one over MaxHandshakeRate waits for the rate
// (golang.org/x/time/rate), and one whose session cannot be committed
// because Redis is unreachable is retried with a short backoff, both within
// HandshakeHold from its arrival. Only what cannot be admitted within that
// bound, or beyond MaxHandshakeQueue handshakes held at once, gets 503 at
// once, with Retry-After and a body saying why. A client that goes away
// while held frees its place and its rate reservation.
//
// Two cases are answered at once, by choice:
//
//   - At MaxConnections: a slot frees only when some client leaves, which
//     can take minutes, so holding would only turn into a late refusal; the
//     limit is a capacity signal (the metric) and a reconnecting client
//     retries, through the balancer, on a gateway with room.
//   - While draining (after SIGTERM): a handshake the rate admits at once is
//     served, as the session lives in Redis and any gateway serves its next
//     requests (a refusal would strand a first-time client for nothing); one
//     that would have to wait for the rate gets 503 at once rather than
//     being held by a gateway that is leaving (reconnecting clients retry
//     through the balancer, which by then sends them elsewhere), and a
//     failing commit is retried for at most drainHold, as a draining
//     gateway holds polls at most a second.

// Handshake results (the result label of realtime_gateway_handshakes_total)
// of admission control; the rejected reason is "handshake_" + result.
const (
	resultOverRate         = "over_rate"         // the rate would admit it only after HandshakeHold
	resultQueueFull        = "queue_full"        // MaxHandshakeQueue handshakes already held
	resultOverConnections  = "over_connections"  // MaxConnections reached
	resultDraining         = "draining"          // draining and not admissible at once
	resultStoreUnavailable = "store_unavailable" // Redis unreachable for the whole hold
	resultCanceled         = "canceled"          // the client went away while held
)

// Bodies of the 503 answers: the 0.9 client passes them to the
// application's 'error' handler.
const (
	bodyOverRate         = "handshake error: server over capacity (handshake rate), retry later"
	bodyQueueFull        = "handshake error: server over capacity (too many handshakes waiting), retry later"
	bodyOverConnections  = "handshake error: server over capacity (connection limit), retry later"
	bodyDraining         = "handshake error: server shutting down, retry"
	bodyStoreUnavailable = "handshake error: session store unavailable"
)

// Session store retries within the hold: the backoff starts at
// storeRetryMin and doubles up to storeRetryMax (each sleep jittered by
// ±50% so a crowd of held handshakes does not retry in step), and an
// attempt always gets at least minAttemptTimeout, so a handshake is
// answered at most that long after its hold ends.
const (
	storeRetryMin     = 50 * time.Millisecond
	storeRetryMax     = 500 * time.Millisecond
	minAttemptTimeout = 100 * time.Millisecond
)

// refusalLogInterval is how often each kind of refusal is logged at most:
// a flood of refusals makes one line per kind per interval, with the count
// (every refusal is also counted in metrics and logged at debug level).
const refusalLogInterval = 10 * time.Second

// drainHold bounds the hold of a handshake that arrives while draining (the
// rate is then not waited for at all): a draining gateway holds polls at
// most a second too (see servePoll).
const drainHold = time.Second

// admission holds handshakes until they can be admitted. It is safe for
// concurrent use.
type admission struct {
	limiter  *rate.Limiter // nil: no rate limit
	maxQueue int64
	waiting  atomic.Int64 // handshakes holding a place in the queue
	onHeld   func(delta float64)

	logs map[string]*refusalLog // by result; fixed in newAdmission
}

// refusalLog rate-limits the log lines of one kind of refusal.
type refusalLog struct {
	every rate.Sometimes
	count atomic.Int64 // refusals since the last line
}

func newAdmission(perSecond float64, maxQueue int, onHeld func(delta float64)) *admission {
	a := &admission{maxQueue: int64(maxQueue), onHeld: onHeld, logs: map[string]*refusalLog{}}
	if perSecond > 0 {
		a.limiter = rate.NewLimiter(rate.Limit(perSecond), max(1, int(math.Ceil(perSecond))))
	}
	for _, r := range []string{resultOverRate, resultQueueFull, resultOverConnections, resultDraining, resultStoreUnavailable} {
		a.logs[r] = &refusalLog{every: rate.Sometimes{Interval: refusalLogInterval}}
	}
	return a
}

// hold is one handshake's passage through admission control.
type hold struct {
	a        *admission
	deadline time.Time     // arrival + the hold bound
	queued   bool          // holds a place in the queue
	waited   time.Duration // time spent held so far
}

func (a *admission) newHold(arrival time.Time, bound time.Duration) *hold {
	return &hold{a: a, deadline: arrival.Add(bound)}
}

// enqueue takes a place in the queue of held handshakes, once; it reports
// false when the queue is full.
func (h *hold) enqueue() bool {
	if h.queued {
		return true
	}
	if h.a.waiting.Add(1) > h.a.maxQueue {
		h.a.waiting.Add(-1)
		return false
	}
	h.queued = true
	h.a.onHeld(1)
	return true
}

// release gives the place in the queue back; call it when the handshake is
// answered.
func (h *hold) release() {
	if h.queued {
		h.queued = false
		h.a.waiting.Add(-1)
		h.a.onHeld(-1)
	}
}

// admitRate waits until the rate admits the handshake (unless mayWait is
// false: then it is admitted only at once, or refused as draining). It
// returns "" when admitted, or the refusal result (resultCanceled when ctx
// ended first) and the wait to suggest in Retry-After. A handshake the rate
// cannot admit before the deadline consumes nothing.
func (h *hold) admitRate(ctx context.Context, mayWait bool) (result string, retryAfter time.Duration) {
	lim := h.a.limiter
	switch {
	case lim == nil || lim.Allow():
		return "", 0
	case !mayWait:
		return resultDraining, h.a.nextFree()
	case !time.Now().Before(h.deadline):
		return resultOverRate, h.a.nextFree()
	}
	if !h.enqueue() {
		return resultQueueFull, h.a.nextFree()
	}
	wctx, cancel := context.WithDeadline(ctx, h.deadline)
	defer cancel()
	start := time.Now()
	// WaitN reserves a token, or fails at once without reserving if the
	// reservation would end after the deadline; a reservation abandoned
	// because ctx ended is cancelled (its token returned).
	err := lim.Wait(wctx)
	h.waited += time.Since(start)
	switch {
	case err == nil:
		return "", 0
	case ctx.Err() != nil:
		return resultCanceled, 0
	default:
		return resultOverRate, h.a.nextFree()
	}
}

// nextFree is how long until the rate could admit one more handshake.
func (a *admission) nextFree() time.Duration {
	if a.limiter == nil {
		return 0
	}
	tokens := a.limiter.Tokens()
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(a.limiter.Limit()) * float64(time.Second))
}

// retry commits with attempt until it succeeds, ctx ends, or the hold's
// deadline leaves no time for another attempt (or the queue has no place
// for a handshake that needs to wait). Each attempt gets at most the
// attempt timeout, and at most what is left of the hold (but at least
// minAttemptTimeout). onFail is called after each failed attempt. It
// returns the last attempt's error.
func (h *hold) retry(ctx context.Context, attemptTimeout time.Duration, attempt func(context.Context) error, onFail func(n int, err error)) error {
	backoff := storeRetryMin
	var start time.Time
	for n := 1; ; n++ {
		timeout := min(attemptTimeout, max(time.Until(h.deadline), minAttemptTimeout))
		actx, cancel := context.WithTimeout(ctx, timeout)
		if n == 1 {
			start = time.Now()
		}
		err := attempt(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			if n > 1 {
				h.waited += time.Since(start)
			}
			if err == nil {
				return nil
			}
			return ctx.Err()
		}
		onFail(n, err)
		left := time.Until(h.deadline) - minAttemptTimeout
		if left <= 0 || !h.enqueue() {
			h.waited += time.Since(start)
			return err
		}
		sleep := min(jitter(backoff), left)
		backoff = min(2*backoff, storeRetryMax)
		t := time.NewTimer(sleep)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			h.waited += time.Since(start)
			return ctx.Err()
		}
	}
}

// jitter returns d ± 50%.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// retryAfter formats a Retry-After value: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// logRefusal logs a refusal of kind result: at debug level each time, and
// at warn level at most once per refusalLogInterval per kind, with the
// number refused since the previous line.
func (g *Gateway) logRefusal(result string, attrs ...any) {
	g.log.Debug("handshake refused", append([]any{"result", result}, attrs...)...)
	l := g.admission.logs[result]
	if l == nil {
		return
	}
	l.count.Add(1)
	l.every.Do(func() {
		g.log.Warn("handshakes refused (count: since the previous line of this result)", "result", result,
			"count", l.count.Swap(0), "why", refusalHint[result])
	})
}

var refusalHint = map[string]string{
	resultOverRate:         "over -max-handshake-rate for longer than -handshake-hold",
	resultQueueFull:        "more than -max-handshake-queue handshakes held at once",
	resultOverConnections:  "-max-connections reached",
	resultDraining:         "draining after SIGTERM",
	resultStoreUnavailable: "Redis unreachable for the whole -handshake-hold",
}

// overConnections reports whether the connection limit is reached.
func (g *Gateway) overConnections() bool {
	max := g.cfg.MaxConnections
	return max > 0 && g.held.Load() >= int64(max)
}
