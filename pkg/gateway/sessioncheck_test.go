package gateway

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

// sessionsGone, which the checks of held streams and of parked polls ask,
// returns the sessions whose record is missing; when Redis cannot be asked
// it returns none, and counts the failure unless the caller gave up.
func TestSessionsGone(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	ctx := context.Background()
	kept, gone := tg.handshake(), tg.handshake()
	if err := tg.rdb.Del(ctx, tg.keys.Session(gone)).Err(); err != nil {
		t.Fatal(err)
	}
	self := func(sid string) string { return sid }
	if got := sessionsGone(ctx, tg.g, []string{kept, gone, "never"}, self); !slices.Equal(got, []string{gone, "never"}) {
		t.Errorf("gone %q, want [%s never]", got, gone)
	}
	if got := sessionsGone(ctx, tg.g, nil, self); got != nil {
		t.Errorf("gone of none: %q", got)
	}
	failures := func(g *Gateway) float64 {
		return counterValue(t, g.metrics.RedisErrors.WithLabelValues("session_check"))
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if got := sessionsGone(canceled, tg.g, []string{gone}, self); got != nil {
		t.Errorf("gone %q with ctx canceled", got)
	}
	if n := failures(tg.g); n != 0 {
		t.Errorf("session_check errors %v after a canceled check, want 0", n)
	}

	rdb := redis.NewClient(&redis.Options{Addr: tg.red.Addr})
	_ = rdb.Close()
	broken, err := New(rdb, Config{Node: "broken", RouteRefresh: testRouteRefresh, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionsGone(ctx, broken, []string{gone}, self); got != nil {
		t.Errorf("gone %q from a Redis that cannot be asked", got)
	}
	if n := failures(broken); n != 1 {
		t.Errorf("session_check errors %v after a failed check, want 1", n)
	}
}
