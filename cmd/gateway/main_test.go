package main

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/internal/cli/clitest"
	"github.com/realtime/realtime/pkg/api"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/gateway"
	"github.com/realtime/realtime/pkg/session"
)

// The flags' defaults, as -h shows them, are the library's named defaults;
// every flag is either one of those or the command's own.
func TestHelpShowsLibraryDefaults(t *testing.T) {
	library := map[string]string{
		"heartbeat-interval":    gateway.DefaultHeartbeatInterval.String(),
		"heartbeat-timeout":     gateway.DefaultHeartbeatTimeout.String(),
		"close-timeout":         gateway.DefaultCloseTimeout.String(),
		"polling-duration":      gateway.DefaultPollingDuration.String(),
		"transports":            strings.Join(gateway.DefaultTransports, ","),
		"origins":               strings.Join(gateway.DefaultOrigins, ","),
		"handshake-headers":     strings.Join(gateway.DefaultHandshakeHeaders, ","),
		"max-handshake-bytes":   strconv.Itoa(gateway.DefaultMaxHandshakeBytes),
		"max-packet-bytes":      strconv.Itoa(gateway.DefaultMaxPacketBytes),
		"max-body-bytes":        strconv.Itoa(gateway.DefaultMaxBodyBytes),
		"body-timeout":          gateway.DefaultBodyTimeout.String(),
		"idle-timeout":          gateway.DefaultIdleTimeout.String(),
		"mailbox-bytes":         strconv.Itoa(session.DefaultMailboxBytes),
		"mailbox-drain-timeout": session.DefaultMailboxDrainTimeout.String(),
		"poll-batch-bytes":      strconv.Itoa(session.DefaultPollBatchBytes),
		"send-queue":            strconv.Itoa(gateway.DefaultSendQueue),
		"send-queue-bytes":      strconv.Itoa(gateway.DefaultSendQueueBytes),
		"max-handshake-rate":    strconv.Itoa(gateway.DefaultMaxHandshakeRate),
		"max-handshake-queue":   strconv.Itoa(gateway.DefaultMaxHandshakeQueue),
		"handshake-hold":        gateway.DefaultHandshakeHold.String(),
		"max-connections":       strconv.Itoa(gateway.DefaultMaxConnections),
		"max-bad-packets":       strconv.Itoa(gateway.DefaultMaxBadPackets),
		"max-namespaces":        strconv.Itoa(gateway.DefaultMaxNamespaces),
		"authorize-timeout":     gateway.DefaultAuthorizeTimeout.String(),
		"liveness-ttl":          gateway.DefaultAliveTTL.String(),
		"route-refresh":         session.DefaultRouteRefresh.String(),
		"redis-wait":            gateway.RedisWait.String(),
		"prefix":                bus.DefaultPrefix,
		"partitions":            strconv.Itoa(bus.DefaultPartitions),
		"admin-addr":            cli.DefaultGatewayAdminAddr,
		"redis-mode":            string(cli.DefaultRedisMode),
		"api-max-body-bytes":    strconv.Itoa(api.DefaultMaxBodyBytes),
		"api-read-timeout":      api.DefaultReadTimeout.String(),
	}
	// The command's own flags: no gateway.Config field behind them, or a
	// zero default meaning "off" or "generated" (-pprof: cli.DefaultPprof,
	// off).
	own := []string{"addr", "node-id", "flash-policy-addr", "max-mailbox", "client-script",
		"static", "authorize", "authorize-fail-open", "drain-delay", "drain-timeout", "pprof", "redis", "log-level", "log-format", "api-addr", "api-key", "session-binding"}
	f := newFlags()
	clitest.CheckDefaults(t, f.cmd, library, own)
	clitest.CheckREADME(t, f.cmd, "../../README.md", "### Gateway flags")
}

// With no flags given, the Config the command builds is the library's
// defaults, field by field.
func TestConfigFromDefaultFlags(t *testing.T) {
	f := newFlags()
	clitest.Parse(t, f.cmd)
	got := f.config(nil)
	want := gateway.Config{
		Keys:              bus.NewKeys("", 0),
		HeartbeatInterval: gateway.DefaultHeartbeatInterval, HeartbeatTimeout: gateway.DefaultHeartbeatTimeout,
		CloseTimeout: gateway.DefaultCloseTimeout, PollingDuration: gateway.DefaultPollingDuration,
		Transports: gateway.DefaultTransports, Origins: gateway.DefaultOrigins,
		HandshakeHeaders: gateway.DefaultHandshakeHeaders, MaxHandshakeBytes: gateway.DefaultMaxHandshakeBytes,
		MaxPacketBytes: gateway.DefaultMaxPacketBytes, MaxBodyBytes: gateway.DefaultMaxBodyBytes,
		BodyTimeout: gateway.DefaultBodyTimeout, IdleTimeout: gateway.DefaultIdleTimeout,
		SendQueue: gateway.DefaultSendQueue, SendQueueBytes: gateway.DefaultSendQueueBytes,
		MailboxBytes: session.DefaultMailboxBytes, MailboxDrainTimeout: session.DefaultMailboxDrainTimeout,
		PollBatchBytes: session.DefaultPollBatchBytes, AliveTTL: gateway.DefaultAliveTTL, RedisWait: gateway.RedisWait,
		RouteRefresh:     session.DefaultRouteRefresh,
		MaxHandshakeRate: gateway.DefaultMaxHandshakeRate, MaxHandshakeQueue: gateway.DefaultMaxHandshakeQueue,
		HandshakeHold: gateway.DefaultHandshakeHold, MaxConnections: gateway.DefaultMaxConnections,
		MaxBadPackets: gateway.DefaultMaxBadPackets, MaxNamespaces: gateway.DefaultMaxNamespaces,
		AuthorizeTimeout: gateway.DefaultAuthorizeTimeout,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config from the default flags:\n%+v\nwant\n%+v", got, want)
	}
}

// The API key comes from -api-key, else GATEWAY_API_KEY, else
// REALTIME_API_KEY; the API's other settings default to the library's.
func TestAPIKeySources(t *testing.T) {
	for _, tc := range []struct {
		args              []string
		gatewayEnv, rtEnv string
		want              string
	}{
		{nil, "", "", ""},
		{nil, "", "from-realtime", "from-realtime"},
		{nil, "from-gateway", "from-realtime", "from-gateway"},
		{[]string{"-api-key", "from-flag"}, "from-gateway", "from-realtime", "from-flag"},
	} {
		t.Setenv("GATEWAY_API_KEY", tc.gatewayEnv)
		t.Setenv("REALTIME_API_KEY", tc.rtEnv)
		if tc.gatewayEnv == "" {
			os.Unsetenv("GATEWAY_API_KEY")
		}
		f := newFlags()
		clitest.Parse(t, f.cmd, tc.args...)
		got := f.apiConfig(nil)
		if got.Key != tc.want {
			t.Errorf("args %q, GATEWAY_API_KEY %q, REALTIME_API_KEY %q: key %q, want %q", tc.args, tc.gatewayEnv, tc.rtEnv, got.Key, tc.want)
		}
		if got.MaxBodyBytes != api.DefaultMaxBodyBytes || got.ReadTimeout != api.DefaultReadTimeout {
			t.Errorf("API config from the default flags: %+v", got)
		}
	}
}
