package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

func TestRedisURLForms(t *testing.T) {
	for _, tc := range []struct {
		url      string
		addr     string // substring of the description
		failover bool
		err      error
		errText  string
	}{
		{url: "redis://localhost:6379/0", addr: "localhost:6379"},
		{url: "rediss://user:pw@redis.example:6380/2", addr: "redis.example:6380"},
		{url: "redis://s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379&username=app&password=pw",
			addr: "[s1:26379 s2:26379 s3:26379], master mymaster", failover: true},
		{url: "redis://node1:7000?addr=node2:7001", err: ErrClusterURL},
		{url: "http://localhost:6379", errText: "invalid URL scheme"},
		{url: "redis://s1:26379?master_name=m&bogus=1", errText: "bogus"},
	} {
		rdb, addr, err := newRedisClient(tc.url)
		switch {
		case tc.err != nil || tc.errText != "":
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("%s: err %v, want %v %q", tc.url, err, tc.err, tc.errText)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if !strings.Contains(addr, tc.addr) {
			t.Errorf("%s: points at %q, want %q", tc.url, addr, tc.addr)
		}
		if got := rdb.Options().PoolSize; got != 128 {
			t.Errorf("%s: pool size %d, want the default 128", tc.url, got)
		}
		_ = rdb.Close()
	}
	// Tune functions reach a failover client's options too.
	rdb, _, err := newRedisClient("redis://s1:26379/0?master_name=m", func(o *redis.Options) { o.ContextTimeoutEnabled = true })
	if err != nil || !rdb.Options().ContextTimeoutEnabled {
		t.Fatalf("failover client not tuned: %v", err)
	}
	_ = rdb.Close()
}

// A Sentinel URL gives a client that finds the primary through the
// sentinels and follows a failover (the primary killed with SIGKILL) by
// itself.
func TestRedisFollowsSentinelFailover(t *testing.T) {
	set := testredis.StartSentinels(t)
	ctx := context.Background()
	rdb, err := Redis(ctx, set.URL(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := set.Primary(t)
	// Let the replica catch up with the write before the primary dies.
	if n, err := rdb.Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	start := time.Now()
	old.Kill(t)
	set.WaitFailover(t, old, 30*time.Second)
	var got string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, err = rdb.Get(ctx, "k").Result()
		if err == nil && rdb.Set(ctx, "k2", "after", 0).Err() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client never reached the new primary: %v", err)
		}
	}
	if got != "before" {
		t.Fatalf("k = %q after the failover, want the replicated value", got)
	}
	t.Logf("writing again %v after the primary was killed", time.Since(start).Round(100*time.Millisecond))
}
