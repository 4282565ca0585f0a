package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Handing a partition over (docs/redis.md, "Rolling deploys").
//
// The workers of one group may serve different signals for a while: during
// a rolling deploy, the new version handles an event, or a namespace, the
// old one does not. Each worker publishes what it serves
// (ConsumerConfig.Serves) in the group's Keys.GroupServes hash with its
// heartbeat, and learns what the others serve (Consumer.Peers). A handler
// that meets a signal its worker does not serve, but a live peer does,
// returns an Outcome whose HandOver names that peer: the consumer leaves
// the signal and everything after it in the partition pending
// (unacknowledged), records the handover in the group's Keys.Handovers
// hash, and lets the partition go. Every worker's share then gives the
// partition to the peer for as long as both are live; the peer claims the
// pending entries, as on any takeover, and handles them in stream order.

// handover is one record of Keys.Handovers: partition → this.
type handover struct {
	To   string `json:"to"`
	From string `json:"from"`
}

// applyHandovers returns want, the partitions name's share gives it among
// the live workers, adjusted by the group's handover records (partition
// number → JSON handover): a partition handed over to name is added, one
// handed over to another worker removed, while both ends of the record are
// live. stale lists the fields of records that no longer hold (an end gone,
// or unreadable), with their values, for a guarded delete.
func applyHandovers(want []int, name string, records map[string]string, live map[string]bool, partitions int) (out []int, stale map[string]string) {
	out = slices.Clone(want)
	for field, raw := range records {
		p, err := strconv.Atoi(field)
		var h handover
		if err != nil || p < 0 || p >= partitions || json.Unmarshal([]byte(raw), &h) != nil || !live[h.To] || !live[h.From] {
			if stale == nil {
				stale = map[string]string{}
			}
			stale[field] = raw
			continue
		}
		i := slices.Index(out, p)
		switch {
		case h.To == name && i < 0:
			out = append(out, p)
		case h.To != name && i >= 0:
			out = slices.Delete(out, i, i+1)
		}
	}
	slices.Sort(out)
	return out, stale
}

// delIfScript deletes hash field ARGV[1] of KEYS[1] if it still holds
// ARGV[2], so that a record rewritten since it was read stays.
var delIfScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`)

// dropStale deletes the handover records that no longer hold and the
// descriptions of workers gone from the group (best effort: what is left
// is ignored, and tried again at the next rebalance).
func (c *Consumer) dropStale(ctx context.Context, records map[string]string, gone []string) {
	pipe := c.rdb.Pipeline()
	for field, raw := range records {
		// Eval, not EvalSha: a pipeline cannot fall back on NOSCRIPT
		// (and this runs rarely).
		delIfScript.Eval(ctx, pipe, []string{c.cfg.Keys.Handovers(c.cfg.Group)}, field, raw)
	}
	if len(gone) > 0 {
		pipe.HDel(ctx, c.cfg.Keys.GroupServes(c.cfg.Group), gone...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Debug("stale handovers not deleted", "err", err)
	}
}

// Peers returns what the other live workers of the group serve (their
// ConsumerConfig.Serves, by worker name) as of the last rebalance, at most
// a second or LeaseTTL/3 old; workers that publish nothing are absent. The
// map is shared: do not modify it.
func (c *Consumer) Peers() map[string]string {
	if m := c.peers.Load(); m != nil {
		return *m
	}
	return nil
}

// handOver gives partition lp to worker to, which serves the signal at the
// head of lp's backlog (Outcome.HandOver): the record first, then the
// partition is let go; what lp has in hand stays pending for to to claim.
func (c *Consumer) handOver(ctx context.Context, lp *loopPart, to string) error {
	rec, err := json.Marshal(handover{To: to, From: c.cfg.Name})
	if err != nil {
		return err
	}
	if err := c.rdb.HSet(ctx, c.cfg.Keys.Handovers(c.cfg.Group), strconv.Itoa(lp.p), rec).Err(); err != nil {
		return fmt.Errorf("bus: record the handover of partition %d: %w", lp.p, err)
	}
	head := lp.backlog[0]
	c.mu.Lock()
	if c.owned[lp.p] == lp.pt {
		close(lp.pt.stop)
		delete(c.owned, lp.p)
		c.releasing[lp.p] = true
		go c.release(lp.p, lp.pt)
	}
	c.mu.Unlock()
	pending := len(lp.backlog)
	lp.backlog = nil // pending in the group: the new owner claims them
	c.log.Info("partition handed over to a worker that serves a signal this one does not",
		"partition", lp.p, "to", to, "kind", head.Kind, "namespace", head.NS, "event", head.Name, "left_pending", pending)
	if c.cfg.OnHandOver != nil {
		c.cfg.OnHandOver(lp.p)
	}
	return nil
}
