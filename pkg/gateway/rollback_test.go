package gateway

import (
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/bus"
)

// A rollback the route reader of a partition placed (Rewound) ends only
// the sessions the lost routes concerned: the streaming ones they
// delivered to and those a broadcast among them reached, and the polling
// ones they woke; the others keep their connection. A rollback it could
// not place ends every streaming session of its partition, and only those.
func TestRewoundRollbackEndsOnlyConcernedSessions(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	part := tg.keys.PartitionOf
	direct, _ := tg.openWS()
	member, _ := tg.openWS()
	other, _ := tg.openWS()
	tg.g.rooms[part(member)].join("", "r", member)
	polling := tg.openPolling()
	for _, lost := range []bus.Route{
		{Op: bus.OpDeliver, SID: direct, Packet: "3:::x"},
		{Op: bus.OpWake, SID: polling, Arg: "7"},
	} {
		tg.g.routeGap(part(lost.SID), bus.Gap{Reason: bus.GapRolledBack, Rewound: true, Lost: []string{lost.String()}})
	}
	tg.g.routeGap(part(member), bus.Gap{Reason: bus.GapRolledBack, Rewound: true, Lost: []string{
		bus.Route{Op: bus.OpBroadcast, Arg: "", Room: "r", Packet: "3:::y"}.String()}})
	for _, sid := range []string{direct, member, polling} {
		tg.waitSignals(sid, "disconnect reason=delivery_gap")
	}
	time.Sleep(200 * time.Millisecond)
	if tg.g.conn(other) == nil {
		t.Fatalf("the session no lost route concerned was ended: %q", tg.signals(other))
	}
	elsewhere := ""
	for range 100 {
		if sid, _ := tg.openWS(); part(sid) != part(other) {
			elsewhere = sid
			break
		}
	}
	if elsewhere == "" {
		t.Fatal("no session in another partition than other's")
	}
	tg.g.routeGap(part(other), bus.Gap{Reason: bus.GapRolledBack, After: 3, Next: 1})
	tg.waitSignals(other, "disconnect reason=delivery_gap")
	time.Sleep(200 * time.Millisecond)
	if tg.g.conn(elsewhere) == nil {
		t.Fatalf("a gap of partition %d ended a session of partition %d: %q", part(other), part(elsewhere), tg.signals(elsewhere))
	}
}

// Signal batches Redis acknowledged and then lost end the sessions that
// sent them, held here (closed) or polling (ended in Redis); a loss the
// committer could not bound ends every streaming session held here.
func TestCommitsRolledBackEndSessions(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	streaming, _ := tg.openWS()
	polling := tg.openPolling()
	kept, _ := tg.openWS()
	tg.g.commitsRolledBack([]string{streaming, polling, streaming}, true)
	tg.waitSignals(streaming, "disconnect reason=delivery_gap")
	tg.waitSignals(polling, "disconnect reason=delivery_gap")
	time.Sleep(200 * time.Millisecond)
	if tg.g.conn(kept) == nil {
		t.Fatalf("a session not in the lost batches was ended: %q", tg.signals(kept))
	}
	tg.g.commitsRolledBack(nil, false)
	tg.waitSignals(kept, "disconnect reason=delivery_gap")
}
