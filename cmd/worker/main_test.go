package main

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/internal/cli/clitest"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/worker"
)

// The flags' defaults, as -h shows them, are the library's named defaults;
// every flag is either one of those or the command's own.
func TestHelpShowsLibraryDefaults(t *testing.T) {
	library := map[string]string{
		"handler-timeout": worker.DefaultHandlerTimeout.String(),
		"max-attempts":    strconv.Itoa(worker.DefaultMaxAttempts),
		"lease-ttl":       worker.DefaultLeaseTTL.String(),
		"prefix":          bus.DefaultPrefix,
		"partitions":      strconv.Itoa(bus.DefaultPartitions),
		"admin-addr":      cli.DefaultWorkerAdminAddr,
	}
	own := []string{"app", "name", "redis", "log-level", "log-format"}
	f := newFlags()
	clitest.CheckDefaults(t, f.cmd, library, own)
	clitest.CheckREADME(t, f.cmd, "../../README.md", "### Worker flags")
}

// With no flags given, the Config the command builds is the library's
// defaults, field by field.
func TestConfigFromDefaultFlags(t *testing.T) {
	f := newFlags()
	clitest.Parse(t, f.cmd)
	got := f.config(nil, nil)
	want := worker.Config{
		Keys:           bus.NewKeys("", 0),
		HandlerTimeout: worker.DefaultHandlerTimeout,
		MaxAttempts:    worker.DefaultMaxAttempts,
		LeaseTTL:       worker.DefaultLeaseTTL,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config from the default flags:\n%+v\nwant\n%+v", got, want)
	}
}
