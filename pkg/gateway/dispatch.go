package gateway

import (
	"context"
	"strconv"
	"time"

	"github.com/realtime/realtime/pkg/bus"
)

// newRouteReader returns the reader of this gateway's route stream of
// partition p (docs/redis.md, "Routing back"), which carries the route
// messages about the partition's sessions: each one read is dispatched in
// order; outages, resumes and gaps are counted for each stream, and an
// outage is logged when the first stream fails and when the last one
// reads again.
func (g *Gateway) newRouteReader(p int) *bus.RouteReader {
	return bus.NewRouteReader(g.rdb, g.cfg.Keys.RouteStream(p, g.cfg.Node), bus.RouteReaderConfig{
		Route: func(payload string) { g.dispatchMessage(p, payload) },
		Gap:   func(gap bus.Gap) { g.routeGap(p, gap) },
		Failed: func(err error) {
			g.metrics.RouteStreamFailures.Inc()
			if g.routeOutages.Add(1) == 1 {
				g.log.Warn("route stream unreadable, retrying from where it was", "partition", p, "err", err)
			}
		},
		Resumed: func(outage time.Duration) {
			g.metrics.RouteStreamResumes.Inc()
			if g.routeOutages.Add(-1) == 0 {
				g.log.Info("route streams read again", "partition", p, "outage", outage.Round(time.Millisecond))
				go g.committer.Check(context.Background()) // did Redis lose signals it acknowledged?
			}
		},
	})
}

// dispatchLoop reads route streams until ctx ends: one, or, where every
// partition is on one node, all of them with one XREAD
// (bus.RunRouteReaders).
func (g *Gateway) dispatchLoop(ctx context.Context, readers ...*bus.RouteReader) {
	defer g.wg.Done()
	bus.RunRouteReaders(ctx, readers...)
}

// routeGap handles a stretch of the route stream of partition p that could
// not be read: any route message committed for a session of the partition
// held here may be in it, and none can be recovered, so every streaming
// connection of the partition held here is closed (reason delivery_gap;
// without 0::, so 0.9 clients reconnect and handshake anew), and every
// poll of the partition parked here is woken to re-read its session (a
// missed wake, kick or close is found that way). Handshakes waiting for an
// authorize answer time out as usual.
//
// A rollback the reader placed (gap.Rewound: Redis came back as it was a
// few entries ago, as a promoted replica that lagged does) misses nothing:
// what was rolled back is committed again or never happened. Only the
// sessions the routes in gap.Lost concerned may have been sent something
// that will be sent again, or joined a room Redis no longer has them in:
// those are closed, the others kept.
func (g *Gateway) routeGap(p int, gap bus.Gap) {
	g.metrics.RouteGaps.WithLabelValues(string(gap.Reason)).Inc()
	go g.committer.Check(context.Background()) // did Redis lose signals it acknowledged?
	var conns []*streamConn
	var polling []string
	if gap.Rewound {
		conns, polling = g.concernedBy(p, gap.Lost)
	} else {
		g.conns.Range(func(_, v any) bool {
			if s := v.(*streamConn); s.part == p {
				conns = append(conns, s)
			}
			return true
		})
	}
	polls := 0
	g.polls.Range(func(_, v any) bool {
		if w := v.(*pollWaiter); g.cfg.Keys.PartitionOf(w.sid) == p {
			w.notifyAll(pollEvent{})
			polls++
		}
		return true
	})
	if gap.Rewound {
		g.log.Error("Redis rolled back route messages already applied here: ending the streaming sessions they concerned",
			"partition", p, "reason", gap.Reason, "rewound_to", gap.After, "last_read", gap.Next, "lost_entries", len(gap.Lost),
			"streams", len(conns), "polls_woken", polls)
	} else {
		g.log.Error("route messages may have been missed: ending the partition's streaming sessions held here",
			"partition", p, "reason", gap.Reason, "last_read", gap.After, "next", gap.Next, "streams", len(conns), "polls_woken", polls)
	}
	for _, s := range conns {
		s.closeLocal(bus.ReasonDeliveryGap)
	}
	go g.endLost(polling, false)
}

// commitsRolledBack handles signal batches Redis acknowledged and then lost
// (bus.CommitterConfig.RolledBack): their clients were told their packets
// were taken, so their sessions are ended (delivery_gap; a streaming one by
// closing its connection without 0::, a polling one in Redis, so its next
// poll is answered 7:::1+0), and 0.9 clients reconnect and handshake anew.
// When the loss went further back than the committer remembers, every
// streaming session held here is ended too. It does not block.
func (g *Gateway) commitsRolledBack(sids []string, complete bool) {
	g.metrics.CommitRollbacks.WithLabelValues(strconv.FormatBool(complete)).Inc()
	g.log.Error("Redis lost signals it had acknowledged: ending the sessions that sent them",
		"sessions", len(sids), "complete", complete)
	go g.endLost(sids, !complete)
}

// endLost ends sessions Redis lost something of (reason delivery_gap): one
// held here by closing its stream (without 0::), any other in Redis, so its
// next poll is answered 7:::1+0; with all, every stream held here too. Its
// commits may wait for room in the committer's queue: run it on its own
// goroutine.
func (g *Gateway) endLost(sids []string, all bool) {
	ended := map[string]bool{}
	for _, sid := range sids {
		if ended[sid] {
			continue
		}
		ended[sid] = true
		if s := g.conn(sid); s != nil {
			s.closeLocal(bus.ReasonDeliveryGap)
			continue
		}
		if _, err := g.committer.CommitAsync(context.Background(), sid, g.store.EndWrite(sid, bus.ReasonDeliveryGap, "")); err != nil {
			return // shutting down
		}
	}
	if all {
		g.conns.Range(func(_, v any) bool { v.(*streamConn).closeLocal(bus.ReasonDeliveryGap); return true })
	}
}

// concernedBy returns the streaming connections held here that the route
// messages (or batches) msgs concern: those they deliver to, close, join or
// make leave, and those a broadcast among them reaches now; and the polling
// sessions they woke or kicked (packets were queued for them, and a poll
// may have taken them: queued again, they would be delivered twice).
func (g *Gateway) concernedBy(p int, msgs []string) ([]*streamConn, []string) {
	seen := map[*streamConn]bool{}
	var polling []string
	add := func(s *streamConn) {
		if s != nil {
			seen[s] = true
		}
	}
	for _, payload := range msgs {
		_ = bus.EachRoute(payload, func(m string) {
			r, err := bus.ParseRoute(m)
			if err != nil {
				return
			}
			switch r.Op {
			case bus.OpDeliver, bus.OpClose, bus.OpJoin, bus.OpLeave:
				add(g.conn(r.SID))
			case bus.OpBroadcast:
				g.broadcastTargets(p, r, add)
			case bus.OpWake, bus.OpKick, bus.OpOffer:
				if s := g.conn(r.SID); s != nil {
					add(s)
				} else {
					polling = append(polling, r.SID) // endLost ends each once
				}
			}
		})
	}
	conns := make([]*streamConn, 0, len(seen))
	for s := range seen {
		conns = append(conns, s)
	}
	return conns, polling
}

// dispatchMessage applies the route messages of one entry of partition p's
// route stream (one, or an M batch of several) in order.
func (g *Gateway) dispatchMessage(p int, payload string) {
	err := bus.EachRoute(payload, func(m string) {
		r, err := bus.ParseRoute(m)
		if err != nil {
			g.rejected(rejectBadRoute, "err", err)
			return
		}
		g.metrics.RouteMessages.WithLabelValues(string(r.Op)).Inc()
		g.dispatch(p, r)
	})
	if err != nil {
		g.rejected(rejectBadRoute, "err", err)
	}
}

// dispatch applies one route message read from partition p's route
// stream. It never blocks.
func (g *Gateway) dispatch(p int, r bus.Route) {
	switch r.Op {
	case bus.OpDeliver:
		if s := g.conn(r.SID); s != nil {
			s.sendRouted(r.Packet, routeDirect, r.Time)
		}
	case bus.OpWake, bus.OpKick:
		if v, ok := g.polls.Load(r.SID); ok {
			v.(*pollWaiter).notify(r.Arg, pollEvent{kick: r.Op == bus.OpKick})
		}
	case bus.OpOffer:
		if v, ok := g.polls.Load(r.SID); !ok || !v.(*pollWaiter).offer(r) {
			g.releaseOffer(r)
		}
	case bus.OpClose:
		if s := g.conn(r.SID); s != nil {
			s.closeRemote(r.Packet)
		}
		if v, ok := g.polls.Load(r.SID); ok {
			v.(*pollWaiter).notifyAll(pollEvent{closed: true, packet: r.Packet})
		}
	case bus.OpJoin:
		if s := g.conn(r.SID); s != nil {
			if r.Room == "" {
				s.setNamespace(r.Arg, true)
			} else {
				g.rooms[p].join(r.Arg, r.Room, r.SID)
			}
		}
	case bus.OpLeave:
		if r.Room != "" {
			g.rooms[p].leave(r.Arg, r.Room, r.SID)
		} else if s := g.conn(r.SID); s != nil {
			s.setNamespace(r.Arg, false)
			g.rooms[p].leaveNamespace(r.Arg, r.SID)
		}
	case bus.OpBroadcast:
		g.broadcast(p, r)
	case bus.OpProbe:
		if v, ok := g.probes.Load(r.SID); ok {
			close(v.(chan struct{}))
			g.probes.Delete(r.SID)
		}
	case bus.OpAuth:
		if v, ok := g.auths.Load(r.SID); ok {
			select {
			case v.(chan bus.Route) <- r:
			default:
			}
		}
	}
}

// conn returns the streaming connection held here for sid, or nil.
func (g *Gateway) conn(sid string) *streamConn {
	if v, ok := g.conns.Load(sid); ok {
		return v.(*streamConn)
	}
	return nil
}

// observeDelivery records how long a routed packet took from its Redis
// script to its write to the client (the clocks of Redis' callers; coarse,
// in ms).
func (g *Gateway) observeDelivery(route int, routedMs int64) {
	if routedMs > 0 {
		g.metrics.delivery[route].Observe(max(0, float64(time.Now().UnixMilli()-routedMs)/1000))
	}
}

// broadcast fans a packet out to the connections of partition p held here
// that are in the namespace (room "") or room, except one sid: each
// partition's route stream carries the broadcast for its own sessions, in
// order with their other routes. Polling members got it through their
// mailboxes.
func (g *Gateway) broadcast(p int, r bus.Route) {
	g.broadcastTargets(p, r, func(s *streamConn) { s.sendRouted(r.Packet, routeBroadcast, r.Time) })
}

// broadcastTargets calls fn with each streaming connection of partition p
// held here that broadcast r reaches: the members of its room (or
// namespace) but the excepted session.
func (g *Gateway) broadcastTargets(p int, r bus.Route, fn func(*streamConn)) {
	if r.Room != "" {
		for _, sid := range g.rooms[p].members(r.Arg, r.Room) {
			if sid != r.SID {
				if s := g.conn(sid); s != nil {
					fn(s)
				}
			}
		}
		return
	}
	g.conns.Range(func(_, v any) bool {
		s := v.(*streamConn)
		if s.part == p && s.sid != r.SID && s.inNamespace(r.Arg) {
			fn(s)
		}
		return true
	})
}
