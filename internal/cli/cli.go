// Package cli holds what the commands share: flags from the environment,
// logging, the Redis connection and the admin listener.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

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

// ErrClusterURL is returned for a Redis Cluster URL (addr parameters
// without master_name): the scripts need a single primary (docs/redis.md).
var ErrClusterURL = errors.New("redis url: Redis Cluster is not supported yet: use one node (redis://host:port/db) or Sentinel (redis://sentinel:port/db?master_name=NAME&addr=sentinel2:port)")

// Redis connects to url and checks it answers within timeout. Each tune
// function may adjust the options first. url takes go-redis's forms:
//
//   - one node: redis://[user:password@]host:port/db, or rediss:// for TLS
//     (redis.ParseURL);
//   - Sentinel: redis://[user:password@]sentinel:port/db?master_name=NAME
//     &addr=sentinel2:port&addr=… (redis.ParseFailoverURL: the user and
//     password in the URL are the sentinels'; the data nodes' ACL user and
//     password go in the username and password parameters). The client
//     asks the sentinels for the primary and follows a failover by itself.
//
// A Redis Cluster URL (addr parameters without master_name) gets
// ErrClusterURL.
func Redis(ctx context.Context, url string, timeout time.Duration, tune ...func(*redis.Options)) (*redis.Client, error) {
	rdb, addr, err := newRedisClient(url, tune...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return rdb, nil
}

// newRedisClient builds the client for url (see Redis) without connecting;
// addr describes where it points, for errors.
func newRedisClient(rawURL string, tune ...func(*redis.Options)) (rdb *redis.Client, addr string, err error) {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("redis url: %w", err)
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		fo, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, "", fmt.Errorf("redis url: %w", err)
		}
		// The tune functions and our defaults speak redis.Options: carry
		// the fields they set over to the failover options.
		opt := &redis.Options{PoolSize: fo.PoolSize, ContextTimeoutEnabled: fo.ContextTimeoutEnabled,
			DialTimeout: fo.DialTimeout, ReadTimeout: fo.ReadTimeout, WriteTimeout: fo.WriteTimeout}
		tuneOptions(opt, tune)
		fo.PoolSize, fo.ContextTimeoutEnabled = opt.PoolSize, opt.ContextTimeoutEnabled
		fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout = opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout
		return redis.NewFailoverClient(fo), fmt.Sprintf("sentinels %v, master %s", fo.SentinelAddrs, fo.MasterName), nil
	case q.Has("addr"):
		return nil, "", ErrClusterURL
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("redis url: %w", err)
	}
	tuneOptions(opt, tune)
	return redis.NewClient(opt), opt.Addr, nil
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
}

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

// AdminHandler serves /metrics, /healthz (liveness: the process answers),
// /readyz (ready() == nil) and the Go profiler at /debug/pprof/ (the admin
// listener is for operators, not clients).
func AdminHandler(reg *prometheus.Registry, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
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
	log, err = Logger(*c.level, *c.format)
	if err != nil {
		return nil, false, err
	}
	return log, true, nil
}

// Cluster holds the flags every process of one cluster must agree on: the
// Redis URL, the key prefix and the number of signal partitions.
type Cluster struct {
	redisURL   *string
	prefix     *string
	partitions *int
}

// ClusterFlags defines -redis (also REDIS_URL), -prefix and -partitions on
// the command's flags.
func (c *Command) ClusterFlags() *Cluster {
	fs := c.Flags
	return &Cluster{
		redisURL:   fs.String("redis", "redis://localhost:6379/0", "Redis URL (also REDIS_URL)"),
		prefix:     fs.String("prefix", bus.DefaultPrefix, "Redis key prefix, shared by the whole cluster"),
		partitions: fs.Int("partitions", bus.DefaultPartitions, "number of signal streams, shared by the whole cluster"),
	}
}

// Keys returns the cluster's key names.
func (c *Cluster) Keys() bus.Keys { return bus.NewKeys(*c.prefix, *c.partitions) }

// Connect connects to the cluster's Redis (see Redis).
func (c *Cluster) Connect(ctx context.Context, tune ...func(*redis.Options)) (*redis.Client, error) {
	return Redis(ctx, *c.redisURL, 5*time.Second, tune...)
}
