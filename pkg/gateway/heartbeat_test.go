package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/session"
)

// slowHook delays every command by delay (a Redis that is held up).
type slowHook struct{ delay time.Duration }

func (h *slowHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *slowHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(h.delay)
		return next(ctx, cmd)
	}
}

func (h *slowHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The lookup an htmlfile stream that looks silent makes: a POST recorded
// by another gateway is a sign of life; none leaves the stream silent; a
// read that fails, or that Redis answers late (its answer may be stale),
// is unknown and gives the stream another heartbeat timeout from then.
func TestLookUpHeard(t *testing.T) {
	srv := testredis.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		posted bool          // another gateway recorded a POST just now
		delay  time.Duration // every Redis command of the holder takes this long
		broken bool          // the holder's Redis client fails
		result string        // the lookup's metric label
		since  time.Duration // how long ago the stream was last heard after the lookup (±300 ms)
	}{
		{name: "heard elsewhere", posted: true, result: "heard", since: 0},
		{name: "silent", result: "silent", since: 4 * time.Second},
		{name: "slow Redis", delay: heartbeatLookupSlow + 100*time.Millisecond, result: "unknown", since: 0},
		{name: "Redis error", broken: true, result: "unknown", since: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			holder := func(node string) *Gateway {
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
				t.Cleanup(func() { _ = rdb.Close() })
				g, err := New(rdb, Config{Node: node, RouteRefresh: testRouteRefresh, HeartbeatInterval: time.Second, HeartbeatTimeout: 3 * time.Second, Logger: logger}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			a, b := holder("a"), holder("b")
			sid, err := a.store.Create(ctx, session.Handshake{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := a.store.OpenStream(ctx, sid, TransportHTMLFile); err != nil {
				t.Fatal(err)
			}
			if tc.posted {
				if _, _, err := b.store.Touch(ctx, sid); err != nil {
					t.Fatal(err)
				}
			}
			s := a.newStreamConn(sid, TransportHTMLFile, nil, false)
			s.lastRead.Store(time.Now().Add(-4 * time.Second).UnixNano())
			if tc.delay > 0 {
				a.rdb.AddHook(&slowHook{delay: tc.delay})
			}
			if tc.broken {
				_ = a.rdb.Close()
			}
			s.lookUpHeard()
			if d := s.silence() - tc.since; d < -300*time.Millisecond || d > 300*time.Millisecond {
				t.Errorf("last heard %v ago, want %v", s.silence(), tc.since)
			}
			for _, r := range []string{"heard", "silent", "unknown"} {
				want := 0.0
				if r == tc.result {
					want = 1
				}
				if got := counterValue(t, a.metrics.HeartbeatLookups.WithLabelValues(r)); got != want {
					t.Errorf("lookups %s = %v, want %v", r, got, want)
				}
			}
			wantErrors := 0.0
			if tc.broken {
				wantErrors = 1
			}
			if got := counterValue(t, a.metrics.RedisErrors.WithLabelValues("heartbeat")); got != wantErrors {
				t.Errorf("redis errors (heartbeat) = %v, want %v", got, wantErrors)
			}
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
