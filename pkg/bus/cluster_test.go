package bus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/testredis"
)

// On a Redis Cluster whose partitions spread over three primaries (a
// prefix without a hash tag), a consumer reads each partition on its own
// (one XREADGROUP may not name two slots): every signal is handled once,
// each session's in the order they were written.
func TestConsumerOnSpreadCluster(t *testing.T) {
	c := testredis.StartCluster(t, 3, 0)
	rdb := c.Client(t)
	ctx := context.Background()
	keys := NewKeys("spread:", 8)
	var mu sync.Mutex
	got := map[string][]string{} // sid -> names, in the order handled
	handler := func(ctx context.Context, batches []Batch) []Outcome {
		out := make([]Outcome, len(batches))
		for i, b := range batches {
			for _, s := range b.Signals {
				if err := rdb.XAck(ctx, keys.Stream(b.Partition), GroupName, s.ID).Err(); err != nil {
					out[i] = Outcome{Err: err}
					break
				}
				mu.Lock()
				got[s.SID] = append(got[s.SID], s.Name)
				mu.Unlock()
				out[i].N++
			}
		}
		return out
	}
	cons := NewConsumer(c.Client(t), ConsumerConfig{Keys: keys, Name: "w", Block: time.Second})
	if !cons.eachPartition {
		t.Fatal("the consumer reads the partitions of a spread cluster with one command")
	}
	runHandler(t, cons, handler)
	waitFor(t, "owning every partition", func() bool { return len(cons.Owned()) == keys.Partitions() })
	sids := make([]string, 16)
	for i := range sids {
		sids[i] = fmt.Sprintf("sid%d", i)
	}
	for round := range 5 {
		for _, sid := range sids {
			sig := &Signal{Kind: KindEvent, SID: sid, Name: fmt.Sprint(round), Args: "[]"}
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.StreamFor(sid), Values: sig.Values()}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "every signal handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, names := range got {
			n += len(names)
		}
		return n >= 5*len(sids)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, sid := range sids {
		if want := []string{"0", "1", "2", "3", "4"}; !slices.Equal(got[sid], want) {
			t.Errorf("%s handled %q, want %q once each, in order", sid, got[sid], want)
		}
	}
}
