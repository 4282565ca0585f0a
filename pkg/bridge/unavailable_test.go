package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/bus"
)

// A 502, 503 or 504 is the app being unavailable (a proxy in front of it
// that cannot reach it, or the app saying so), and its signals are not
// counted an attempt (bus.ErrNotAttempted), unless another request was
// answered 2xx while it was in flight: then the app is up and the status
// is a failure of these signals like a 500.
func TestUnavailableStatuses(t *testing.T) {
	status := func(code int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(srv.Close)
		return srv
	}
	for _, code := range []int{502, 503, 504, 500} {
		b, err := New(Config{Endpoint: status(code).URL, Secret: []byte("x"), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.post(context.Background(), &Request{V: Version})
		if got, want := errors.Is(err, bus.ErrNotAttempted), code != 500; got != want || !errors.Is(err, ErrStatus) {
			t.Errorf("%d: %v; not attempted %v, want %v", code, err, got, want)
		}
	}

	// The first request is answered 502 only after the second was
	// answered 200.
	var arrived atomic.Int32
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 1 {
			<-release
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"v":1,"results":[]}`))
	}))
	defer app.Close()
	b, err := New(Config{Endpoint: app.URL, Secret: []byte("x"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := b.post(context.Background(), &Request{V: Version})
		first <- err
	}()
	for arrived.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := b.post(context.Background(), &Request{V: Version}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-first; errors.Is(err, bus.ErrNotAttempted) || !errors.Is(err, ErrStatus) {
		t.Errorf("502 while the app answered another request 2xx: %v, want a counted failure", err)
	}
	// Later, with no 2xx since it was sent, a 502 is the app down again.
	b.cfg.Endpoint = status(502).URL
	if _, err := b.post(context.Background(), &Request{V: Version}); !errors.Is(err, bus.ErrNotAttempted) {
		t.Errorf("502 with no 2xx since: %v, want not attempted", err)
	}
}
