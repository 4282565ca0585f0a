package bus

import (
	"errors"
	"strings"
	"testing"
)

// Sample values for the variable parts of key patterns (KeyPattern.Part).
const (
	sampleSID       = "AbCdEfGhIjKlMnOpQrStUv"
	samplePartition = 3
	sampleNS        = "/chat"
	sampleRoom      = "lobby"
	sampleNode      = "gw-1"
	sampleGroup     = "chat+echo"
)

// keyNames returns, for every key pattern by name, what Keys names for the
// sample values.
func keyNames(k Keys) map[string]string {
	return map[string]string{
		"sig": k.Stream(samplePartition), "dead": k.DeadLetter(samplePartition),
		"gw": k.RouteStream(sampleNode), "reply": k.ReplyChannel(sampleNode),
		"s": k.Session(sampleSID), "mb": k.Mailbox(sampleSID), "ns": k.SessionNamespaces(sampleSID),
		"rooms": k.SessionRooms(sampleSID), "acks": k.Acks(sampleSID), "cf": k.Confirmed(sampleSID),
		"kick": k.Kick(sampleSID), "post": k.Post(sampleSID), "deadlines": k.Deadlines(),
		"nsm": k.NamespaceSessions(sampleNS), "nsp": k.NamespacePolling(sampleNS),
		"room": k.RoomSessions(sampleNS, sampleRoom), "roomp": k.RoomPolling(sampleNS, sampleRoom),
		"gws": k.Gateways(), "gwalive": k.GatewayAlive(sampleNode), "gwss": k.GatewayStreams(sampleNode),
		"workers": k.Workers(), "lease": k.Lease(samplePartition),
		"groupworkers": k.GroupWorkers(sampleGroup), "grouplease": k.GroupLease(sampleGroup, samplePartition),
		"groupserves": k.GroupServes(sampleGroup), "handovers": k.Handovers(sampleGroup), "cm": k.CommitMarker(sampleNode, 7),
	}
}

// fillPattern writes a pattern as docs/redis.md does (KeyPattern.Doc), with
// the sample values in place of the prefix and the variable parts.
func fillPattern(doc, prefix string) string {
	return strings.NewReplacer("<P>", prefix, "{sid}", "{"+sampleSID+"}", "{p}", "{3}",
		"<ns>", sampleNS, "<room>", sampleRoom, "<node>", sampleNode, "<shard>", "7", "<group>", sampleGroup).Replace(doc)
}

// Every Keys method names its keys by its pattern, and every pattern has a
// method: the Lua key macros expanded from the patterns (pkg/session) name
// the same keys as the Go side.
func TestKeyPatternsMatchKeys(t *testing.T) {
	k := NewKeys("p:", 8)
	names := keyNames(k)
	seen := map[string]bool{}
	for _, p := range KeyPatterns() {
		if seen[p.Name] {
			t.Errorf("pattern %q twice", p.Name)
		}
		seen[p.Name] = true
		if !strings.HasPrefix(p.Head, p.Name) {
			t.Errorf("pattern %q: head %q does not start with its name", p.Name, p.Head)
		}
		want, ok := names[p.Name]
		if !ok {
			t.Errorf("pattern %q has no Keys method in keyNames", p.Name)
			continue
		}
		if got := fillPattern(p.Doc(), k.Prefix()); got != want {
			t.Errorf("pattern %q (%s) names %q; Keys names %q", p.Name, p.Doc(), got, want)
		}
	}
	if len(seen) != len(names) {
		t.Errorf("%d patterns for %d Keys methods", len(seen), len(names))
	}
	if got := k.StreamFor(sampleSID); got != k.Stream(Partition(sampleSID, 8)) {
		t.Errorf("StreamFor = %q", got)
	}
	if k := NewKeys("", 0); k.Prefix() != DefaultPrefix || k.Partitions() != DefaultPartitions {
		t.Errorf("NewKeys defaults: %q %d", k.Prefix(), k.Partitions())
	}
}

func TestReply(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want Reply
		bad  bool
	}{
		{msg: "s1\n7\n[1,\"x\"]", want: Reply{SID: "s1", ID: 7, Args: `[1,"x"]`}},
		{msg: "s1\n7\n", want: Reply{SID: "s1", ID: 7}},
		{msg: "s1\n9007199254740991\n[\"a\\nb\"]\n", want: Reply{SID: "s1", ID: 1<<53 - 1, Args: "[\"a\\nb\"]\n"}},
		{msg: "s1\n7", bad: true},
		{msg: "s1\nx\n[]", bad: true},
		{msg: "s1\n-1\n[]", bad: true},
		{msg: "", bad: true},
	} {
		got, err := ParseReply(tc.msg)
		if tc.bad {
			if !errors.Is(err, ErrBadReply) {
				t.Errorf("ParseReply(%q) error = %v, want ErrBadReply", tc.msg, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v", tc.msg, got, err, tc.want)
		}
		if s := got.String(); s != tc.msg {
			t.Errorf("String() = %q, want %q", s, tc.msg)
		}
	}
}

// The room keys' SCAN pattern escapes Redis glob characters in the prefix
// and the namespace, and ends with the wildcard for the room name.
func TestRoomSessionsMatch(t *testing.T) {
	for _, tc := range []struct{ prefix, ns, want string }{
		{"rt:", "", "rt:room::*"},
		{"rt:", "/chat", "rt:room:/chat:*"},
		{"a*[b]?\\:", "/x*y", `a\*\[b\]\?\\:room:/x\*y:*`},
	} {
		if got := NewKeys(tc.prefix, 0).RoomSessionsMatch(tc.ns); got != tc.want {
			t.Errorf("RoomSessionsMatch(%q) with prefix %q = %q, want %q", tc.ns, tc.prefix, got, tc.want)
		}
	}
}
