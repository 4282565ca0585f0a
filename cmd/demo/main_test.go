package main

import (
	"errors"
	"net"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/realtime/realtime/internal/cli/clitest"
	"github.com/realtime/realtime/pkg/gateway"
)

// The demo's one flag that fills a library setting, -transports, shows the
// library's default; every other flag is the demo's own.
func TestHelpShowsLibraryDefaults(t *testing.T) {
	library := map[string]string{"transports": strings.Join(gateway.DefaultTransports, ",")}
	own := []string{"addr", "redis", "redis-mode", "static", "client-script", "log-level", "log-format",
		"http-endpoint", "http-secret", "api-addr"}
	f := newFlags()
	clitest.CheckDefaults(t, f.cmd, library, own)
}

// With no flags given, the demo gateway sets only what a demo must (its
// node id, the page, the script) and takes the library's defaults for the
// rest.
func TestGatewayConfigFromDefaultFlags(t *testing.T) {
	f := newFlags()
	clitest.Parse(t, f.cmd)
	got := f.gatewayConfig("/x/socket.io.js", nil)
	want := gateway.Config{Node: "demo-gw", Transports: gateway.DefaultTransports, StaticDir: "web/chat", ClientScript: "/x/socket.io.js"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gateway Config from the default flags:\n%+v\nwant\n%+v", got, want)
	}
}

// A port in use fails at once, and the error says how to pick another.
func TestPortInUseSaysHowToPickAnother(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = newFlags().run([]string{"-addr", l.Addr().String(), "-log-level", "error"})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("run on a port in use: %v, want EADDRINUSE", err)
	}
	for _, want := range []string{"-addr", "DEMO_ADDR=", "make demo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}
