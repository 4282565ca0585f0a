package gateway

import (
	"sync"
	"time"
)

// tokenBucket admits up to rate events per second, with bursts of up to
// rate; a zero rate admits everything.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64) *tokenBucket {
	return &tokenBucket{rate: rate, tokens: rate, last: time.Now()}
}

// allow takes a token if one is there.
func (b *tokenBucket) allow() bool {
	if b.rate <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// admit decides whether a new session may start here: under the handshake
// rate, and under the connection count (streams held plus polls parked).
// It returns the refusal reason, or "".
func (g *Gateway) admit() string {
	if max := g.cfg.MaxConnections; max > 0 && g.held.Load() >= int64(max) {
		return "over_connections"
	}
	if !g.handshakes.allow() {
		return "over_rate"
	}
	return ""
}
