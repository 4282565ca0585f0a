package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

func TestRedisURLForms(t *testing.T) {
	for _, tc := range []struct {
		url     string
		mode    RedisMode
		addr    string // substring of the description
		kind    string // "client" (one node or Sentinel) or "cluster"
		probe   bool
		err     error
		errText string
	}{
		{url: "redis://localhost:6379/0", mode: RedisAuto, addr: "localhost:6379", kind: "client", probe: true},
		{url: "redis://localhost:6379/0", mode: RedisStandalone, addr: "localhost:6379", kind: "client"},
		{url: "redis://localhost:6379/0", mode: RedisCluster, addr: "cluster [localhost:6379]", kind: "cluster"},
		{url: "redis://localhost:6379/2", mode: RedisCluster, errText: "database 0 only"},
		{url: "rediss://user:pw@redis.example:6380/2", mode: RedisAuto, addr: "redis.example:6380", kind: "client", probe: true},
		{url: "redis://s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379&username=app&password=pw", mode: RedisAuto,
			addr: "[s1:26379 s2:26379 s3:26379], master mymaster", kind: "client"},
		{url: "redis://s1:26379/0?master_name=m", mode: RedisStandalone, addr: "master m", kind: "client"},
		{url: "redis://s1:26379/0?master_name=m", mode: RedisCluster, err: ErrRedisMode},
		{url: "redis://node1:7000?addr=node2:7001", mode: RedisAuto, addr: "cluster [node1:7000 node2:7001]", kind: "cluster"},
		{url: "redis://node1:7000/0?addr=node2:7001", mode: RedisCluster, addr: "cluster [node1:7000 node2:7001]", kind: "cluster"},
		{url: "redis://node1:7000?addr=node2:7001", mode: RedisStandalone, err: ErrRedisMode},
		{url: "redis://node1:7000?addr=node2", mode: RedisAuto, errText: "addr param"},
		{url: "redis://node1:7000?addr=node2:7001&bogus=1", mode: RedisAuto, errText: "bogus"},
		{url: "redis://localhost:6379/0", mode: "sharded", err: ErrRedisMode},
		{url: "http://localhost:6379", mode: RedisAuto, errText: "invalid URL scheme"},
		{url: "redis://s1:26379?master_name=m&bogus=1", mode: RedisAuto, errText: "bogus"},
	} {
		name := tc.url + " " + string(tc.mode)
		rdb, addr, probe, err := newRedisClient(tc.url, tc.mode)
		switch {
		case tc.err != nil || tc.errText != "":
			if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("%s: err %v, want %v %q", name, err, tc.err, tc.errText)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(addr, tc.addr) {
			t.Errorf("%s: points at %q, want %q", name, addr, tc.addr)
		}
		if probe != tc.probe {
			t.Errorf("%s: probe %v, want %v", name, probe, tc.probe)
		}
		var pool, rbuf, wbuf int
		switch c := rdb.(type) {
		case *redis.Client:
			pool, rbuf, wbuf = c.Options().PoolSize, c.Options().ReadBufferSize, c.Options().WriteBufferSize
			if tc.kind != "client" {
				t.Errorf("%s: a plain client, want a %s client", name, tc.kind)
			}
		case *redis.ClusterClient:
			pool, rbuf, wbuf = c.Options().PoolSize, c.Options().ReadBufferSize, c.Options().WriteBufferSize
			if tc.kind != "cluster" {
				t.Errorf("%s: a cluster client, want a %s client", name, tc.kind)
			}
			if got := c.Options().ClusterStateReloadInterval; got != DefaultClusterStateReload {
				t.Errorf("%s: slot map reloaded every %v, want %v", name, got, DefaultClusterStateReload)
			}
		default:
			t.Errorf("%s: a %T", name, rdb)
		}
		if pool != 128 {
			t.Errorf("%s: pool size %d, want the default 128", name, pool)
		}
		if rbuf != RedisBufferBytes || wbuf != RedisBufferBytes {
			t.Errorf("%s: buffers %d and %d bytes, want %d", name, rbuf, wbuf, RedisBufferBytes)
		}
		_ = rdb.Close()
	}
	// Tune functions reach a failover client's options too.
	rdb, _, _, err := newRedisClient("redis://s1:26379/0?master_name=m", RedisAuto, func(o *redis.Options) { o.ContextTimeoutEnabled = true })
	if err != nil || !rdb.(*redis.Client).Options().ContextTimeoutEnabled {
		t.Fatalf("failover client not tuned: %v", err)
	}
	if o := rdb.(*redis.Client).Options(); o.ReadBufferSize != RedisBufferBytes || o.WriteBufferSize != RedisBufferBytes {
		t.Errorf("failover client buffers %d and %d bytes, want %d", o.ReadBufferSize, o.WriteBufferSize, RedisBufferBytes)
	}
	_ = rdb.Close()
	// And a cluster client's, which keeps the URL's TLS and ACL user.
	rdb, _, _, err = newRedisClient("rediss://app:pw@node1:7000?addr=node2:7001", RedisAuto, func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		o.ReadTimeout, o.WriteTimeout = 3*time.Second, 4*time.Second
		o.PoolSize = 7
	})
	if err != nil {
		t.Fatal(err)
	}
	co := rdb.(*redis.ClusterClient).Options()
	if !co.ContextTimeoutEnabled || co.ReadTimeout != 3*time.Second || co.WriteTimeout != 4*time.Second || co.PoolSize != 7 {
		t.Errorf("cluster client not tuned: %+v", co)
	}
	if co.TLSConfig == nil || co.TLSConfig.ServerName != "node1" || co.Username != "app" || co.Password != "pw" {
		t.Errorf("cluster client lost TLS or the ACL user: tls %v, user %q, password %q", co.TLSConfig, co.Username, co.Password)
	}
	_ = rdb.Close()
}

// With -redis-mode auto, one node's URL gives a cluster client when the
// node belongs to a Redis Cluster (keys of every slot work through it), a
// plain client when it is a standalone Redis; standalone mode keeps a plain
// client even on a cluster node (which answers MOVED for other slots).
func TestRedisDetectsCluster(t *testing.T) {
	ctx := context.Background()
	c := testredis.StartCluster(t, 3, 0)
	one := "redis://" + c.Nodes[0].Addr + "/0"
	for _, url := range []string{one, c.URL()} {
		rdb, err := Redis(ctx, url, RedisAuto, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if _, ok := rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("%s: a %T, want a cluster client", url, rdb)
		}
		for i := 0; i < 20; i++ {
			key := fmt.Sprintf("k%d", i)
			if err := rdb.Set(ctx, key, url, 0).Err(); err != nil {
				t.Fatalf("%s: SET %s: %v", url, key, err)
			}
			if got, err := c.PrimaryFor(t, key).Client(t).Get(ctx, key).Result(); err != nil || got != url {
				t.Fatalf("%s: %s on its primary: %q %v", url, key, got, err)
			}
		}
		_ = rdb.Close()
	}
	rdb, err := Redis(ctx, one, RedisStandalone, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rdb.(*redis.Client); !ok {
		t.Fatalf("standalone mode gave a %T", rdb)
	}
	moved := 0
	for i := 0; i < 20; i++ {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), 1, 0).Err(); err != nil && strings.HasPrefix(err.Error(), "MOVED") {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("a plain client on one node of three wrote 20 keys without a MOVED: not a cluster?")
	}
	_ = rdb.Close()

	s := testredis.Start(t)
	rdb, err = Redis(ctx, s.URL(), RedisAuto, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rdb.(*redis.Client); !ok {
		t.Fatalf("auto mode on a standalone Redis gave a %T", rdb)
	}
	_ = rdb.Close()
	if _, err := Redis(ctx, s.URL(), RedisCluster, 5*time.Second); err == nil {
		t.Fatal("cluster mode on a standalone Redis connected")
	}
}

// The detection falls back to INFO cluster when an ACL refuses CLUSTER
// INFO, and takes a node whose user may run neither for a standalone one.
func TestRedisDetectsClusterUnderACL(t *testing.T) {
	ctx := context.Background()
	node := testredis.StartArgs(t, "--cluster-enabled", "yes")
	plain := testredis.StartArgs(t)
	for _, s := range []*testredis.Server{node, plain} {
		admin := s.Client(t)
		for _, cmd := range [][]any{
			{"ACL", "SETUSER", "infoonly", "on", ">pw", "~*", "+@all", "-cluster"},
			{"ACL", "SETUSER", "neither", "on", ">pw", "~*", "+@all", "-cluster", "-info"},
		} {
			if err := admin.Do(ctx, cmd...).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		s       *testredis.Server
		user    string
		cluster bool
	}{
		{node, "default", true}, {node, "infoonly", true}, {node, "neither", false},
		{plain, "default", false}, {plain, "infoonly", false}, {plain, "neither", false},
	} {
		opt := &redis.Options{Addr: tc.s.Addr}
		if tc.user != "default" {
			opt.Username, opt.Password = tc.user, "pw"
		}
		rdb := redis.NewClient(opt)
		got, err := isClusterNode(ctx, rdb)
		_ = rdb.Close()
		if err != nil || got != tc.cluster {
			t.Errorf("%s as %s: cluster %v %v, want %v", tc.s.Addr, tc.user, got, err, tc.cluster)
		}
	}
}

// A Sentinel URL gives a client that finds the primary through the
// sentinels and follows a failover (the primary killed with SIGKILL) by
// itself.
func TestRedisFollowsSentinelFailover(t *testing.T) {
	set := testredis.StartSentinels(t)
	ctx := context.Background()
	rdb, err := Redis(ctx, set.URL(), RedisAuto, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := set.Primary(t)
	// Let the replica catch up with the write before the primary dies.
	if n, err := rdb.(*redis.Client).Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
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

// A cluster client from Redis follows a failover (a primary killed with
// SIGKILL, its replica promoted) by itself: it reloads the slot map every
// DefaultClusterStateReload, since the dead primary sends no MOVED.
func TestRedisFollowsClusterFailover(t *testing.T) {
	c := testredis.StartCluster(t, 3, 1)
	ctx := context.Background()
	rdb, err := Redis(ctx, c.URL(), RedisAuto, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := c.PrimaryFor(t, "k")
	if n, err := old.Client(t).Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	start := time.Now()
	old.Kill(t)
	c.WaitFailover(t, old, 15*time.Second)
	promoted := time.Since(start)
	var got string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err = rdb.Get(ctx, "k").Result()
		if err == nil && rdb.Set(ctx, "k", "after", 0).Err() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client never reached the promoted replica: %v", err)
		}
	}
	if got != "before" {
		t.Fatalf("k = %q after the failover, want the replicated value", got)
	}
	t.Logf("replica promoted %v, client writing again %v after the primary was killed",
		promoted.Round(10*time.Millisecond), time.Since(start).Round(10*time.Millisecond))
}

// An ACL user in a cluster URL (or in one node's URL, detected as a cluster
// node) is every node's: the cluster client logs in as it on each node,
// and a wrong password stops Redis at start with WRONGPASS.
func TestRedisClusterACL(t *testing.T) {
	c := testredis.StartCluster(t, 3, 0)
	ctx := context.Background()
	for _, node := range c.Nodes {
		// ACLs are per node; only app may write keys of app:*.
		if err := node.Client(t).Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+@all").Err(); err != nil {
			t.Fatal(err)
		}
	}
	urls := []string{strings.Replace(c.URL(), "redis://", "redis://app:pw@", 1), "redis://app:pw@" + c.Nodes[2].Addr + "/0"}
	for _, url := range urls {
		rdb, err := Redis(ctx, url, RedisAuto, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if _, ok := rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("%s: a %T, want a cluster client", url, rdb)
		}
		for i := 0; i < 20; i++ {
			if err := rdb.Set(ctx, fmt.Sprintf("app:%d", i), i, 0).Err(); err != nil {
				t.Fatalf("%s: SET app:%d: %v", url, i, err)
			}
		}
		if err := rdb.Set(ctx, "other", 1, 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("%s: SET outside the user's keys: %v, want NOPERM (not logged in as app?)", url, err)
		}
		_ = rdb.Close()
	}
	for _, url := range urls {
		url = strings.Replace(url, "app:pw@", "app:wrong@", 1)
		if _, err := Redis(ctx, url, RedisAuto, 5*time.Second); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("%s: %v, want WRONGPASS", url, err)
		}
	}
}

// The prefix is what was given (bus.DefaultPrefix by default), on a Redis
// Cluster as on a standalone Redis: the partitions' hash tags spread the
// keys over a cluster's primaries; a prefix with a tag of its own is kept.
func TestClusterPrefix(t *testing.T) {
	ctx := context.Background()
	rc := testredis.StartCluster(t, 3, 0)
	s := testredis.Start(t)
	for _, tc := range []struct {
		url    string
		args   []string
		prefix string
		err    error
	}{
		{rc.URL(), nil, bus.DefaultPrefix, nil},
		{rc.URL(), []string{"-prefix", "app{a}:"}, "app{a}:", nil},
		{rc.URL(), []string{"-prefix", "x:"}, "x:", nil},
		{s.URL(), nil, bus.DefaultPrefix, nil},
		{s.URL(), []string{"-prefix", "p:"}, "p:", nil},
	} {
		cmd := NewCommand("test", "TEST_", "a test")
		cl := cmd.ClusterFlags()
		if _, _, err := cmd.Parse(append([]string{"-redis", tc.url}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		rdb, err := cl.Connect(ctx)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s %q: Connect: %v, want %v", tc.url, tc.args, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		_ = rdb.Close()
		if got := cl.Keys().Prefix(); got != tc.prefix {
			t.Errorf("%s %q: prefix %q, want %q", tc.url, tc.args, got, tc.prefix)
		}
	}
}

// go-redis's own log lines (a pool that cannot dial) go through the
// command's logger: one JSON object per line with -log-format json.
func TestRedisLogFollowsLogFormat(t *testing.T) {
	var buf bytes.Buffer
	redisLog{slog.New(slog.NewJSONHandler(&buf, nil))}.Printf(context.Background(),
		"redis: connection pool: failed to dial after %d attempts: %v\n", 5, errors.New("connection refused"))
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if line["level"] != "WARN" || line["from"] != "go-redis" ||
		line["msg"] != "redis: connection pool: failed to dial after 5 attempts: connection refused" {
		t.Fatalf("logged %v", line)
	}
}
