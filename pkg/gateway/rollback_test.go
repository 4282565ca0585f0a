package gateway

import (
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/bus"
)

// A rollback the route reader placed (Rewound) ends only the sessions the
// lost routes concerned: the streaming ones they delivered to and those a
// broadcast among them reached, and the polling ones they woke; the others
// keep their connection. A rollback it could not place ends every
// streaming session.
func TestRewoundRollbackEndsOnlyConcernedSessions(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	direct, _ := tg.openWS()
	member, _ := tg.openWS()
	other, _ := tg.openWS()
	tg.g.rooms.join("", "r", member)
	polling := tg.openPolling()
	tg.g.routeGap(bus.Gap{Reason: bus.GapRolledBack, Rewound: true, Lost: []string{
		bus.Route{Op: bus.OpDeliver, SID: direct, Packet: "3:::x"}.String(),
		bus.Route{Op: bus.OpBroadcast, Arg: "", Room: "r", Packet: "3:::y"}.String(),
		bus.Route{Op: bus.OpWake, SID: polling, Arg: "7"}.String(),
	}})
	for _, sid := range []string{direct, member, polling} {
		tg.waitSignals(sid, "disconnect reason=delivery_gap")
	}
	time.Sleep(200 * time.Millisecond)
	if tg.g.conn(other) == nil {
		t.Fatalf("the session no lost route concerned was ended: %q", tg.signals(other))
	}
	tg.g.routeGap(bus.Gap{Reason: bus.GapRolledBack, After: 3, Next: 1})
	tg.waitSignals(other, "disconnect reason=delivery_gap")
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
