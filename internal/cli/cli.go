// Package cli holds what the commands share: flags from the environment,
// logging, the Redis connection and the admin listener.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/admin"
	"github.com/realtime/realtime/pkg/bus"
)

// EnvName is the environment variable that sets flag name for a command:
// prefix + name in upper case with '-' as '_' (e.g. GATEWAY_HEARTBEAT_TIMEOUT).
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ApplyEnv sets every flag of fs not given on the command line from its
// environment variable (EnvName(prefix, name)); the flag "redis" also reads
// REDIS_URL. Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet, prefix string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		v, ok := os.LookupEnv(EnvName(prefix, f.Name))
		if !ok && f.Name == "redis" {
			v, ok = os.LookupEnv("REDIS_URL")
		}
		if ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s: %w", EnvName(prefix, f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// Logger builds the process's logger: level debug|info|warn|error, format
// text|json, on stderr.
func Logger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// RedisMode says which kind of Redis a single-node -redis URL names (flag
// -redis-mode). URLs with addr parameters say it themselves: Sentinel with
// master_name, Redis Cluster without.
type RedisMode string

// The Redis modes.
const (
	// RedisAuto asks the node once at start (CLUSTER INFO, else INFO
	// cluster's cluster_enabled) and uses a cluster client when it is a
	// Redis Cluster node, a plain client otherwise or when neither command
	// answers (e.g. refused by an ACL).
	RedisAuto RedisMode = "auto"
	// RedisStandalone uses a plain client (or the Sentinel client for a
	// master_name URL) without asking.
	RedisStandalone RedisMode = "standalone"
	// RedisCluster uses a cluster client, the URL's node seeding it.
	RedisCluster RedisMode = "cluster"
)

// DefaultRedisMode is the default of -redis-mode.
const DefaultRedisMode = RedisAuto

// DefaultClusterStateReload is how often a cluster client reloads the slot
// map (go-redis's ClusterStateReloadInterval, whose default is 60 s; one
// CLUSTER SLOTS per reload). A primary killed sends no MOVED, so this
// bounds how long an idle process keeps a dead primary in its map after
// its replica was promoted; a busy one reloads at once when a command
// fails for want of a connection (reloadOnConnError).
const DefaultClusterStateReload = 250 * time.Millisecond

// ErrRedisMode is returned for a -redis-mode that is not one of the modes,
// or that contradicts the URL (cluster with master_name, standalone with
// addr parameters but no master_name).
var ErrRedisMode = errors.New("redis mode")

// ParseRedisMode returns the mode s names: auto, standalone or cluster.
func ParseRedisMode(s string) (RedisMode, error) {
	switch m := RedisMode(s); m {
	case RedisAuto, RedisStandalone, RedisCluster:
		return m, nil
	}
	return "", fmt.Errorf("%w %q: want auto, standalone or cluster", ErrRedisMode, s)
}

// Redis connects to url and checks it answers within timeout. Each tune
// function may adjust the options first (for a Sentinel or cluster client,
// the pool size, ContextTimeoutEnabled and the dial, read and write
// timeouts carry over). url takes go-redis's forms:
//
//   - one node: redis://[user:password@]host:port/db, or rediss:// for TLS
//     (redis.ParseURL). With mode RedisAuto the node is asked whether it
//     belongs to a Redis Cluster, and if so the client is a cluster client
//     seeded with it, as with mode RedisCluster (database 0 only);
//   - Sentinel: redis://[user:password@]sentinel:port/db?master_name=NAME
//     &addr=sentinel2:port&addr=… (redis.ParseFailoverURL: the user and
//     password in the URL are the sentinels'; the data nodes' ACL user and
//     password go in the username and password parameters). The client
//     asks the sentinels for the primary and follows a failover by itself;
//   - Redis Cluster: redis://[user:password@]node:port?addr=node2:port
//     &addr=… (redis.ParseClusterURL; rediss:// for TLS; the user and
//     password are every node's): a *redis.ClusterClient, which reloads
//     the slot map every DefaultClusterStateReload.
//
// A mode that contradicts the URL gets ErrRedisMode.
func Redis(ctx context.Context, url string, mode RedisMode, timeout time.Duration, tune ...func(*redis.Options)) (redis.UniversalClient, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rdb, addr, probe, err := newRedisClient(url, mode, tune...)
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	if !probe {
		return rdb, nil
	}
	cluster, err := isClusterNode(ctx, rdb)
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	if !cluster {
		return rdb, nil
	}
	_ = rdb.Close()
	rdb, addr, err = newClusterClient(url, tune)
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return rdb, nil
}

// isClusterNode reports whether the node rdb talks to has cluster mode on:
// CLUSTER INFO answers only there ("ERR This instance has cluster support
// disabled" elsewhere); when it is refused otherwise (an ACL, a renamed
// command), INFO cluster says cluster_enabled:1 or 0. When neither answers,
// the node is taken for a standalone one. Only a lost connection or an
// expired ctx is an error.
func isClusterNode(ctx context.Context, rdb redis.UniversalClient) (bool, error) {
	err := rdb.ClusterInfo(ctx).Err()
	if err == nil {
		return true, nil
	}
	if strings.Contains(err.Error(), "cluster support disabled") {
		return false, nil
	}
	if !isRedisReply(err) {
		return false, fmt.Errorf("CLUSTER INFO: %w", err)
	}
	info, err := rdb.Info(ctx, "cluster").Result()
	if err != nil {
		if !isRedisReply(err) {
			return false, fmt.Errorf("INFO cluster: %w", err)
		}
		return false, nil
	}
	return strings.Contains(info, "cluster_enabled:1"), nil
}

// isRedisReply reports whether err is an error reply of Redis (the command
// ran, or was refused), not a failure to talk to it.
func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// newRedisClient builds the client for url and mode (see Redis) without
// connecting; addr describes where it points, for errors; probe says the
// client is a plain one that Redis must ask the node about (RedisAuto).
func newRedisClient(rawURL string, mode RedisMode, tune ...func(*redis.Options)) (rdb redis.UniversalClient, addr string, probe bool, err error) {
	if _, err := ParseRedisMode(string(mode)); err != nil {
		return nil, "", false, err
	}
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return nil, "", false, fmt.Errorf("redis url: %w", err)
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		if mode == RedisCluster {
			return nil, "", false, fmt.Errorf("%w cluster: the URL names Sentinel (master_name)", ErrRedisMode)
		}
		fo, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, "", false, fmt.Errorf("redis url: %w", err)
		}
		// The tune functions and our defaults speak redis.Options: carry
		// the fields they set over to the failover options.
		opt := &redis.Options{PoolSize: fo.PoolSize, ContextTimeoutEnabled: fo.ContextTimeoutEnabled,
			DialTimeout: fo.DialTimeout, ReadTimeout: fo.ReadTimeout, WriteTimeout: fo.WriteTimeout,
			ReadBufferSize: fo.ReadBufferSize, WriteBufferSize: fo.WriteBufferSize}
		tuneOptions(opt, tune)
		fo.PoolSize, fo.ContextTimeoutEnabled = opt.PoolSize, opt.ContextTimeoutEnabled
		fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout = opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout
		fo.ReadBufferSize, fo.WriteBufferSize = opt.ReadBufferSize, opt.WriteBufferSize
		return redis.NewFailoverClient(fo), fmt.Sprintf("sentinels %v, master %s", fo.SentinelAddrs, fo.MasterName), false, nil
	case q.Has("addr"):
		if mode == RedisStandalone {
			return nil, "", false, fmt.Errorf("%w standalone: the URL names Redis Cluster nodes (addr without master_name)", ErrRedisMode)
		}
		rdb, addr, err := newClusterClient(rawURL, tune)
		return rdb, addr, false, err
	case mode == RedisCluster:
		rdb, addr, err := newClusterClient(rawURL, tune)
		return rdb, addr, false, err
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, "", false, fmt.Errorf("redis url: %w", err)
	}
	tuneOptions(opt, tune)
	return redis.NewClient(opt), opt.Addr, mode == RedisAuto, nil
}

// newClusterClient builds a cluster client for a URL in
// redis.ParseClusterURL's form; a path other than database 0 is refused
// (a cluster has no other).
func newClusterClient(rawURL string, tune []func(*redis.Options)) (redis.UniversalClient, string, error) {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("redis url: %w", err)
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" && p != "0" {
		return nil, "", fmt.Errorf("redis url: database %q: Redis Cluster has database 0 only", p)
	}
	u.Path = ""
	co, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, "", fmt.Errorf("redis url: %w", err)
	}
	// As for Sentinel: carry what the tune functions set over.
	opt := &redis.Options{PoolSize: co.PoolSize, ContextTimeoutEnabled: co.ContextTimeoutEnabled,
		DialTimeout: co.DialTimeout, ReadTimeout: co.ReadTimeout, WriteTimeout: co.WriteTimeout,
		ReadBufferSize: co.ReadBufferSize, WriteBufferSize: co.WriteBufferSize}
	tuneOptions(opt, tune)
	co.PoolSize, co.ContextTimeoutEnabled = opt.PoolSize, opt.ContextTimeoutEnabled
	co.DialTimeout, co.ReadTimeout, co.WriteTimeout = opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout
	co.ReadBufferSize, co.WriteBufferSize = opt.ReadBufferSize, opt.WriteBufferSize
	if co.ClusterStateReloadInterval == 0 {
		co.ClusterStateReloadInterval = DefaultClusterStateReload
	}
	cc := redis.NewClusterClient(co)
	cc.AddHook(reloadOnConnError{cc})
	return cc, fmt.Sprintf("cluster %v", co.Addrs), nil
}

// reloadOnConnError asks a cluster client to reload its slot map (at once,
// coalesced: go-redis's lazy reload) when a command or pipeline fails for
// want of a connection. go-redis reloads it on MOVED, which a dead primary
// never sends, and otherwise only every ClusterStateReloadInterval; so a
// process follows a promoted replica within a reload of the promotion,
// not up to an interval later (TestRedisClusterFailoverUnderTraffic: a
// polling POST gives up after gateway.Config.RedisWait).
type reloadOnConnError struct{ cc *redis.ClusterClient }

func (h reloadOnConnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnConnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnConnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

// check reloads on a network error (a refused dial, a reset or timed out
// connection); Redis's own replies and a caller's canceled context do not.
func (h reloadOnConnError) check(err error) {
	var ne net.Error
	if err != nil && (errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED)) {
		h.cc.ReloadState(context.Background())
	}
}

// tuneOptions applies the tune functions, then the defaults they left.
func tuneOptions(opt *redis.Options, tune []func(*redis.Options)) {
	for _, f := range tune {
		f(opt)
	}
	if opt.PoolSize == 0 {
		// A worker holds one connection per owned partition in a blocking
		// read: with more partitions than the default pool (10 per CPU) it
		// would wait for connections. (At 16 partitions on 2 CPUs this made
		// no measurable difference to echo throughput.)
		opt.PoolSize = 128
	}
	if opt.ReadBufferSize == 0 {
		opt.ReadBufferSize = RedisBufferBytes
	}
	if opt.WriteBufferSize == 0 {
		opt.WriteBufferSize = RedisBufferBytes
	}
}

// RedisBufferBytes is the read and the write buffer of each connection of
// a process's Redis pool, in bytes (go-redis's default is 32 KiB). A
// gateway's pool grows to PoolSize (128) connections in a burst of
// handshakes or polls and keeps them: 8 KiB buffers hold 2 MiB where 32
// KiB ones hold 8 MiB. The commands on these connections and their replies
// are small (scripts on one session, route stream reads of tens of
// entries); larger replies take a few more reads. Pipelines and
// transactions (the committers' batches) run on go-redis's separate
// pipeline pool, whose buffers keep its 128 KiB default.
const RedisBufferBytes = 8 << 10

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Default listen addresses of the admin endpoints (/metrics, /healthz,
// /readyz): the gateway's -admin-addr and the worker's. They differ, so a
// gateway and a worker started with defaults on one host both start, and
// both lie outside 9100-9999, the range the Prometheus project allocates to
// exporters (its wiki's "Default port allocations": node_exporter is 9100,
// and the range is fully allocated), and apart from Prometheus itself,
// Pushgateway and Alertmanager (9090-9094). A cluster run by hand gives
// gateway N the client port 800N and the admin port 810N (README.md,
// "Running the cluster by hand"), which the worker's 8110 clears.
const (
	DefaultGatewayAdminAddr = "localhost:8100"
	DefaultWorkerAdminAddr  = "localhost:8110"
)

// DefaultPprof is the default of the commands' -pprof flag: the Go profiler
// is not served unless asked for. It shows the process's internals (stacks,
// command line, heap) and a profile or trace costs CPU for as long as the
// caller asks, so it belongs only on an admin listener no client reaches.
const DefaultPprof = false

// PprofUsage is the -pprof flag's help text, shared by the commands.
const PprofUsage = "serve the Go profiler at /debug/pprof/ on the admin listener (exposes stacks and the command line, and a profile costs CPU: enable only where the admin listener is private)"

// AdminHandler serves /metrics, /healthz (liveness: the process answers),
// /readyz (ready() == nil: 200 "ready", else 503 "not ready: <error>"; the
// lines notes returns, if notes is not nil, follow either) and, when
// withPprof is set, the Go profiler at /debug/pprof/ (404 otherwise): admin.Handler. The
// admin listener is for operators, Prometheus and probes, not clients.
func AdminHandler(reg *prometheus.Registry, ready func(context.Context) error, notes func() string, withPprof bool) http.Handler {
	return admin.Handler(reg, ready, notes, withPprof)
}

// Command is what every command shares: a flag set with the logging flags,
// a usage text that mentions the environment, parsing of the arguments and
// then of the environment, and the logger.
type Command struct {
	// Flags holds the command's flags; define more before Parse.
	Flags     *flag.FlagSet
	envPrefix string
	level     *string
	format    *string
	log       *slog.Logger // Parse's, once made
}

// NewCommand returns a command named name whose flags can also be set as
// envPrefix+FLAG in the environment; summary opens its usage text.
func NewCommand(name, envPrefix, summary string) *Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := &Command{Flags: fs, envPrefix: envPrefix,
		level:  fs.String("log-level", "info", "log level: debug, info, warn, error"),
		format: fs.String("log-format", "text", "log format: text or json"),
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n%s\nEvery flag can also be set as %s<FLAG> in the environment.\n\n",
			name, summary, envPrefix)
		fs.PrintDefaults()
	}
	return c
}

// Help returns the command's usage text, as -h prints it.
func (c *Command) Help() string {
	var b strings.Builder
	out := c.Flags.Output()
	c.Flags.SetOutput(&b)
	c.Flags.Usage()
	c.Flags.SetOutput(out)
	return b.String()
}

// Parse parses args, then the environment, and returns the logger. ok is
// false (with a nil error) when the command should just exit: -h printed the
// usage.
func (c *Command) Parse(args []string) (log *slog.Logger, ok bool, err error) {
	if err := c.Flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if err := ApplyEnv(c.Flags, c.envPrefix); err != nil {
		return nil, false, err
	}
	if err := checkNotNegative(c.Flags); err != nil {
		return nil, false, err
	}
	log, err = Logger(*c.level, *c.format)
	if err != nil {
		return nil, false, err
	}
	redis.SetLogger(redisLog{log})
	c.log = log
	return log, true, nil
}

// Exit ends the process with status 1 after saying why: as an error line
// of the command's logger once Parse made it, so that -log-format json
// holds for the last line too, else (a flag Parse refused) as
// "<name>: error: <err>" on stderr.
func (c *Command) Exit(err error) {
	if c.log != nil {
		c.log.Error("exiting", "err", err)
	} else {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", c.Flags.Name(), err)
	}
	os.Exit(1)
}

// checkNotNegative refuses a number or duration flag set below zero: no
// flag of these commands gives a negative value a meaning, and taken as
// given one would silently act as "no limit" or "off" (-max-handshake-rate
// -5).
func checkNotNegative(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) { // ApplyEnv's values are not "visited"
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		negative := false
		switch v := g.Get().(type) {
		case int:
			negative = v < 0
		case int64:
			negative = v < 0
		case float64:
			negative = v < 0
		case time.Duration:
			negative = v < 0
		}
		if negative {
			err = fmt.Errorf("-%s %s: must not be negative", f.Name, f.Value)
		}
	})
	return err
}

// redisLog hands go-redis's own log lines (a pool that cannot dial during
// a Redis outage, ...) to the command's logger, so that they follow
// -log-format and -log-level like every other line (go-redis would print
// them as plain text on stderr).
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "from", "go-redis")
}

// Cluster holds the flags every process of one cluster must agree on: the
// Redis URL and mode, the key prefix and the number of signal partitions.
type Cluster struct {
	fs         *flag.FlagSet
	redisURL   *string
	redisMode  *string
	prefix     *string
	partitions *int
}

// RedisModeUsage is the -redis-mode flag's help text, shared by the commands.
const RedisModeUsage = "what a one-node -redis URL names: auto (ask the node whether it is a Redis Cluster node), standalone or cluster"

// ClusterFlags defines -redis (also REDIS_URL), -redis-mode, -prefix and
// -partitions on the command's flags.
func (c *Command) ClusterFlags() *Cluster {
	fs := c.Flags
	return &Cluster{
		fs:         fs,
		redisURL:   fs.String("redis", "redis://localhost:6379/0", "Redis URL: one node, Sentinel (?master_name=…&addr=…) or Redis Cluster (?addr=…) (also REDIS_URL)"),
		redisMode:  fs.String("redis-mode", string(DefaultRedisMode), RedisModeUsage),
		prefix:     fs.String("prefix", bus.DefaultPrefix, "Redis key prefix, shared by the whole cluster"),
		partitions: fs.Int("partitions", bus.DefaultPartitions, "number of signal streams, shared by the whole cluster"),
	}
}

// Keys returns the cluster's key names: call it after Connect, which may
// choose the prefix on a Redis Cluster.
func (c *Cluster) Keys() bus.Keys { return bus.NewKeys(*c.prefix, *c.partitions) }

// Connect connects to the cluster's Redis (see Redis) in the -redis-mode
// asked for, within 5 s. On a Redis Cluster the partitions spread over the
// primaries (each partition's keys share its hash tag, docs/redis.md
// "Partitions and hash slots"); a -prefix holding a hash tag of its own
// puts every key in that tag's slot instead. -partitions must be 1 to
// bus.MaxPartitions. Unless a tune function sets it, each node's pool
// holds at least two connections per partition (a gateway's route stream
// reads and a worker's partition reads block one each) and 128.
func (c *Cluster) Connect(ctx context.Context, tune ...func(*redis.Options)) (redis.UniversalClient, error) {
	if n := *c.partitions; n < 1 || n > bus.MaxPartitions {
		return nil, fmt.Errorf("-partitions %d: must be 1 to %d", n, bus.MaxPartitions)
	}
	pool := func(o *redis.Options) {
		if o.PoolSize == 0 {
			o.PoolSize = max(128, 2*(*c.partitions)+32)
		}
	}
	return Redis(ctx, *c.redisURL, RedisMode(*c.redisMode), 5*time.Second, append(slices.Clip(tune), pool)...)
}
