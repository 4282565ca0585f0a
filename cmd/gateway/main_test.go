package main

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/internal/cli/clitest"
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
		"max-packet-bytes":      strconv.Itoa(gateway.DefaultMaxPacketBytes),
		"max-body-bytes":        strconv.Itoa(gateway.DefaultMaxBodyBytes),
		"mailbox-bytes":         strconv.Itoa(session.DefaultMailboxBytes),
		"mailbox-drain-timeout": session.DefaultMailboxDrainTimeout.String(),
		"poll-batch-bytes":      strconv.Itoa(session.DefaultPollBatchBytes),
		"send-queue":            strconv.Itoa(gateway.DefaultSendQueue),
		"max-handshake-rate":    strconv.Itoa(gateway.DefaultMaxHandshakeRate),
		"max-handshake-queue":   strconv.Itoa(gateway.DefaultMaxHandshakeQueue),
		"handshake-hold":        gateway.DefaultHandshakeHold.String(),
		"max-connections":       strconv.Itoa(gateway.DefaultMaxConnections),
		"authorize-timeout":     gateway.DefaultAuthorizeTimeout.String(),
		"liveness-ttl":          gateway.DefaultAliveTTL.String(),
		"prefix":                bus.DefaultPrefix,
		"partitions":            strconv.Itoa(bus.DefaultPartitions),
		"admin-addr":            cli.DefaultGatewayAdminAddr,
	}
	// The command's own flags: no gateway.Config field behind them, or a
	// zero default meaning "off" or "generated".
	own := []string{"addr", "node-id", "flash-policy-addr", "max-mailbox", "client-script",
		"static", "authorize", "authorize-fail-open", "drain-delay", "drain-timeout", "redis", "log-level", "log-format"}
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
		MaxPacketBytes: gateway.DefaultMaxPacketBytes, MaxBodyBytes: gateway.DefaultMaxBodyBytes,
		SendQueue:    gateway.DefaultSendQueue,
		MailboxBytes: session.DefaultMailboxBytes, MailboxDrainTimeout: session.DefaultMailboxDrainTimeout,
		PollBatchBytes: session.DefaultPollBatchBytes, AliveTTL: gateway.DefaultAliveTTL,
		MaxHandshakeRate: gateway.DefaultMaxHandshakeRate, MaxHandshakeQueue: gateway.DefaultMaxHandshakeQueue,
		HandshakeHold: gateway.DefaultHandshakeHold, MaxConnections: gateway.DefaultMaxConnections,
		AuthorizeTimeout: gateway.DefaultAuthorizeTimeout,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config from the default flags:\n%+v\nwant\n%+v", got, want)
	}
}
