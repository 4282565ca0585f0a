package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bridge"
	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/worker"
)

// Requests for different partitions run concurrently, up to Concurrency,
// and one request carries the signals of one partition only, in order.
func TestConcurrencyAcrossPartitions(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			srv := testredis.Start(t)
			rdb := srv.Client(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			keys := bus.NewKeys("", 0)
			// Four sessions in four partitions, two events each.
			var sids []string
			seen := map[int]bool{}
			for i := 0; len(sids) < 4; i++ {
				sid := fmt.Sprintf("Sconc%017d", i)
				if p := bus.Partition(sid, keys.Partitions()); !seen[p] {
					seen[p] = true
					sids = append(sids, sid)
				}
			}
			var mu sync.Mutex
			inFlight, maxInFlight := 0, 0
			var bad []string
			var order []string
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req bridge.Request
				body, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(body, &req)
				mu.Lock()
				inFlight++
				maxInFlight = max(maxInFlight, inFlight)
				p := bus.Partition(req.Signals[0].SID, keys.Partitions())
				for _, s := range req.Signals {
					if bus.Partition(s.SID, keys.Partitions()) != p {
						bad = append(bad, fmt.Sprintf("partitions %d and %d in one request", p, bus.Partition(s.SID, keys.Partitions())))
					}
					order = append(order, s.SID+"/"+s.Name)
				}
				mu.Unlock()
				time.Sleep(300 * time.Millisecond)
				mu.Lock()
				inFlight--
				mu.Unlock()
				results := ""
				for i := range req.Signals {
					if i > 0 {
						results += ","
					}
					results += "{}"
				}
				_, _ = fmt.Fprintf(w, `{"v":1,"results":[%s]}`, results)
			}))
			defer app.Close()
			// The signals first, so that the worker's first read takes them all.
			for _, sid := range sids {
				for _, n := range []string{"a", "b"} {
					s := bus.Signal{Kind: bus.KindEvent, SID: sid, Gateway: "gw1", Time: time.Now(), Name: n, Args: "[]"}
					if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(sid), Values: s.Values()}).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			w := worker.New(rdb, worker.Config{Keys: keys, Name: "w-conc", Logger: quiet})
			b, err := bridge.New(bridge.Config{Endpoint: app.URL, Secret: []byte("x"), Concurrency: limit, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			b.Register(w)
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			deadline := time.Now().Add(15 * time.Second)
			for {
				mu.Lock()
				n := len(order)
				mu.Unlock()
				if n >= 8 && pendingAll(t, rdb, keys) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("only %d signals sent within 15s", n)
				}
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if maxInFlight != limit {
				t.Errorf("at most %d requests in flight, want %d", maxInFlight, limit)
			}
			if len(bad) > 0 || len(order) != 8 {
				t.Errorf("%v; sent %v", bad, order)
			}
			for _, sid := range sids {
				ia, ib := -1, -1
				for i, o := range order {
					switch o {
					case sid + "/a":
						ia = i
					case sid + "/b":
						ib = i
					}
				}
				if ia < 0 || ib < ia {
					t.Errorf("session %s: a at %d, b at %d in %v", sid, ia, ib, order)
				}
			}
		})
	}
}
