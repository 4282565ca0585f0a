package gateway

import (
	"context"
	"slices"
	"testing"
)

// applyPacket as a table: each packet type on a session opened by a poll
// (so it exists in Redis), in a streaming batch (immediate answers through
// reply) or a polling one (through the mailbox); the writes are committed
// and their effects read back from Redis: the signals in the session's
// partition stream, its mailbox and its namespaces.
func TestApplyPacket(t *testing.T) {
	tg := newLiveGateway(t, Config{})
	for _, tc := range []struct {
		name      string
		streaming bool     // reply is set (a connection held here)
		joined    []string // namespaces connected before, besides ""
		packets   []string
		reasons   []rejectReason // one per packet; nil: all accepted
		replies   []string       // written to the client at once
		signals   []string       // added to the stream, described
		mailbox   []string       // added to the mailbox
		ns        []string       // the session's namespaces after (nil: unchanged)
		ended     bool
		changed   bool
	}{
		{name: "message", packets: []string{"3:::hi"}, signals: []string{"message hi"}},
		{name: "json", packets: []string{`4:::{"a":1}`}, signals: []string{`json {"a":1}`}},
		{name: "bad json", packets: []string{`4:::{a`}, reasons: []rejectReason{rejectBadJSON}},
		{name: "event", packets: []string{`5:::{"name":"chat","args":["hi",1]}`}, signals: []string{`event chat ["hi",1]`}},
		{name: "event without args", packets: []string{`5:::{"name":"chat"}`}, signals: []string{`event chat`}},
		{name: "event with empty args", packets: []string{`5:::{"name":"chat","args":[]}`}, signals: []string{`event chat`}},
		{name: "bad event", packets: []string{`5:::{"args":[]}`}, reasons: []rejectReason{rejectBadEvent}},
		{name: "event not JSON", packets: []string{`5:::chat`}, reasons: []rejectReason{rejectBadEvent}},
		{name: "disconnect event ignored", packets: []string{`5:::{"name":"disconnect"}`}},
		{name: "disconnect event ignored, its plain ack answered", streaming: true, packets: []string{`5:7::{"name":"disconnect"}`},
			replies: []string{"6:::7"}},
		{name: "plain ack id, streaming", streaming: true, packets: []string{`5:7::{"name":"chat"}`},
			replies: []string{"6:::7"}, signals: []string{"event chat id=7"}},
		{name: "plain ack id, polling", packets: []string{`3:7::hi`},
			mailbox: []string{"6:::7"}, signals: []string{"message hi id=7"}},
		{name: "data ack id", streaming: true, packets: []string{`5:8+::{"name":"chat"}`},
			signals: []string{"event chat id=8+"}},
		{name: "data ack id, polling", packets: []string{`4:9+::[1]`},
			signals: []string{"json [1] id=9+"}},
		{name: "message to an unjoined namespace", packets: []string{"3::/chat:hi"},
			reasons: []rejectReason{rejectNamespaceNotConnected}},
		{name: "event to an unjoined namespace", streaming: true, packets: []string{`5:1:/chat:{"name":"a"}`},
			reasons: []rejectReason{rejectNamespaceNotConnected}},
		{name: "message to a joined namespace", joined: []string{"/chat"}, packets: []string{"3::/chat:hi"},
			signals: []string{"message /chat hi"}},
		{name: "connect namespace, streaming", streaming: true, packets: []string{"1::/chat"},
			replies: []string{"1::/chat"}, signals: []string{"connect /chat"}, ns: []string{"", "/chat"}, changed: true},
		{name: "connect namespace, polling", packets: []string{"1::/chat:?x=1"},
			mailbox: []string{"1::/chat"}, signals: []string{"connect /chat query=?x=1"}, ns: []string{"", "/chat"}, changed: true},
		{name: "connect default namespace", packets: []string{"1::"}},
		{name: "disconnect a joined namespace", joined: []string{"/chat"}, packets: []string{"0::/chat"},
			signals: []string{"disconnect /chat reason=client"}, ns: []string{""}, changed: true},
		{name: "disconnect an unjoined namespace", packets: []string{"0::/chat"}},
		{name: "disconnect the session", packets: []string{"0::", "3:::after"},
			signals: []string{"disconnect reason=client"}, ended: true},
		{name: "heartbeat and noop", packets: []string{"2::", "8::"}},
		{name: "error packet", packets: []string{"7:::1+0"}, reasons: []rejectReason{rejectClientErrorPacket}},
		{name: "malformed", packets: []string{"x"}, reasons: []rejectReason{rejectMalformedPacket}},
		{name: "bad namespace", packets: []string{"3::chat:hi"}, reasons: []rejectReason{rejectBadNamespace}},
		{name: "namespace with a control character", packets: []string{"3::/c\x01:hi"}, reasons: []rejectReason{rejectBadNamespace}},
		{name: "ack of a server emit", packets: []string{`6:::4+["ok"]`}, signals: []string{`ack ["ok"] id=4`}},
		{name: "ack to an unjoined namespace", packets: []string{`6::/chat:4+["ok"]`},
			reasons: []rejectReason{rejectNamespaceNotConnected}},
		{name: "bad ack", packets: []string{`6:::x`}, reasons: []rejectReason{rejectBadAck}},
		{name: "several in order", streaming: true, packets: []string{"1::/a", "3::/a:one", `5:2:/a:{"name":"b"}`, "0::/a", "3::/a:late"},
			reasons: []rejectReason{notRejected, notRejected, notRejected, notRejected, rejectNamespaceNotConnected},
			replies: []string{"1::/a", "6::/a:2"}, signals: []string{"connect /a", "message /a one", "event /a b id=2", "disconnect /a reason=client"},
			ns: []string{""}, changed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sid := tg.openPolling()
			for _, ns := range tc.joined {
				if err := tg.g.committer.Commit(ctx, sid, tg.g.store.JoinWrite(sid, ns, "", false)); err != nil {
					t.Fatal(err)
				}
			}
			signalsBefore, mailboxBefore, nsBefore := tg.signals(sid), tg.mailbox(sid), tg.namespaces(sid)
			in := &inbound{sid: sid, transport: TransportXHRPolling, joined: map[string]bool{"": true}}
			for _, ns := range tc.joined {
				in.joined[ns] = true
			}
			var replies []string
			if tc.streaming {
				in.transport = TransportWebSocket
				in.reply = func(p string) { replies = append(replies, p) }
			}
			for i, p := range tc.packets {
				want := notRejected
				if tc.reasons != nil {
					want = tc.reasons[i]
				}
				if got := tg.g.applyPacket(in, []byte(p)); got != want {
					t.Errorf("packet %q: rejected %q, want %q", p, got, want)
				}
			}
			if err := tg.g.committer.Commit(ctx, sid, in.writes...); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(replies, tc.replies) {
				t.Errorf("replies %q, want %q", replies, tc.replies)
			}
			if got := tg.signals(sid)[len(signalsBefore):]; !slices.Equal(got, tc.signals) {
				t.Errorf("signals %q, want %q", got, tc.signals)
			}
			if in.ended != tc.ended || in.changed != tc.changed {
				t.Errorf("ended %v changed %v, want %v %v", in.ended, in.changed, tc.ended, tc.changed)
			}
			if tc.ended {
				if ok, err := tg.g.store.Exists(ctx, sid); err != nil || ok {
					t.Errorf("session still exists after 0:: (%v)", err)
				}
				return
			}
			if got := tg.mailbox(sid)[len(mailboxBefore):]; !slices.Equal(got, tc.mailbox) {
				t.Errorf("mailbox %q, want %q", got, tc.mailbox)
			}
			wantNS := nsBefore
			if tc.ns != nil {
				wantNS = tc.ns
			}
			if got := tg.namespaces(sid); !slices.Equal(got, wantNS) {
				t.Errorf("namespaces %q, want %q", got, wantNS)
			}
		})
	}
}

// validNamespace's edges: the slash, the length bound, UTF-8, control bytes.
func TestValidNamespace(t *testing.T) {
	long := "/" + string(make([]byte, maxNamespaceBytes))
	for _, tc := range []struct {
		ns   string
		want bool
	}{
		{"/", true}, {"/chat", true}, {"/ünï", true}, {"chat", false}, {"/a\x7f", false}, {"/a\tb", false},
		{"/\xff", false}, {long[:maxNamespaceBytes], false}, {"/" + string(slices.Repeat([]byte("a"), maxNamespaceBytes-1)), true},
	} {
		if got := validNamespace(tc.ns); got != tc.want {
			t.Errorf("validNamespace(%q) = %v, want %v", tc.ns, got, tc.want)
		}
	}
}
