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
		"gw": k.RouteStream(samplePartition, sampleNode), "reply": k.ReplyChannel(sampleNode),
		"s": k.Session(sampleSID), "mb": k.Mailbox(sampleSID), "ns": k.SessionNamespaces(sampleSID),
		"rooms": k.SessionRooms(sampleSID), "acks": k.Acks(sampleSID), "cf": k.Confirmed(sampleSID),
		"kick": k.Kick(sampleSID), "post": k.Post(sampleSID), "deadlines": k.Deadlines(samplePartition),
		"members": k.Members(samplePartition), "pmembers": k.PollingMembers(samplePartition),
		"roomidx": k.RoomIndex(samplePartition),
		"gws":     k.Gateways(), "gwalive": k.GatewayAlive(sampleNode), "gwss": k.GatewayStreams(samplePartition, sampleNode),
		"holders": k.StreamHolders(samplePartition), "routing": k.RouteGateways(samplePartition),
		"workers": k.Workers(), "lease": k.Lease(samplePartition),
		"groupworkers": k.GroupWorkers(sampleGroup), "grouplease": k.GroupLease(sampleGroup, samplePartition),
		"groupserves": k.GroupServes(sampleGroup), "handovers": k.Handovers(sampleGroup), "cm": k.CommitMarker(samplePartition, sampleNode),
		"out": k.Outbox(samplePartition), "in": k.Inbox(samplePartition),
	}
}

// fillPattern writes a pattern as docs/redis.md does (KeyPattern.Doc), with
// the sample values of k in place of the prefix and the variable parts:
// {p} is the hash tag of the session's partition in a session's key, of
// samplePartition in the others.
func fillPattern(doc string, k Keys) string {
	p := samplePartition
	if strings.Contains(doc, "<sid>") {
		p = k.PartitionOf(sampleSID)
	}
	tag := PartitionTags(k.Partitions())[p]
	return strings.NewReplacer("<P>", k.Prefix(), "<sid>", sampleSID, "{p}", "{"+tag+"}",
		"<ns>", sampleNS, "<room>", sampleRoom, "<node>", sampleNode, "<group>", sampleGroup).Replace(doc)
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
		if got := fillPattern(p.Doc(), k); got != want {
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

// Every partition key, a session's keys included, hashes to its
// partition's slot; the keys of the whole cluster carry no tag.
func TestPartitionKeysShareTheirSlot(t *testing.T) {
	k := NewKeys("rt:", 16)
	p := k.PartitionOf(sampleSID)
	want := Slot(k.Stream(p))
	for _, key := range []string{k.Session(sampleSID), k.Mailbox(sampleSID), k.SessionNamespaces(sampleSID),
		k.SessionRooms(sampleSID), k.Acks(sampleSID), k.Confirmed(sampleSID), k.Kick(sampleSID), k.Post(sampleSID),
		k.Deadlines(p), k.Members(p), k.PollingMembers(p), k.RoomIndex(p),
		k.GatewayStreams(p, sampleNode), k.RouteStream(p, sampleNode), k.CommitMarker(p, sampleNode), k.Outbox(p), k.Inbox(p), k.StreamHolders(p), k.RouteGateways(p), k.Lease(p), k.GroupLease(sampleGroup, p), k.DeadLetter(p)} {
		if got := Slot(key); got != want {
			t.Errorf("%s hashes to slot %d, not its partition's %d", key, got, want)
		}
	}
	for q := range k.Partitions() {
		if q != p && Slot(k.Stream(q)) == want {
			t.Errorf("partitions %d and %d share slot %d", p, q, want)
		}
		if got := k.StreamPartition(k.Stream(q)); got != q {
			t.Errorf("StreamPartition(%q) = %d, want %d", k.Stream(q), got, q)
		}
	}
	if got := k.StreamPartition(k.DeadLetter(p)); got != -1 {
		t.Errorf("StreamPartition of a dead-letter stream = %d", got)
	}
	for _, pat := range KeyPatterns() {
		if !pat.Partitioned && strings.ContainsAny(pat.Doc(), "{}") {
			t.Errorf("%s: a key of the whole cluster with a hash tag", pat.Doc())
		}
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

// A member entry's prefix names exactly one room: no entry of another room
// (a longer name sharing its start, a name holding the separator or a
// newline) starts with it, and the range of a room holds only its entries.
// GlobPrefix escapes Redis glob characters.
func TestMemberEntries(t *testing.T) {
	rooms := [][2]string{{"", ""}, {"/chat", ""}, {"/chat", "a"}, {"/chat", "ab"}, {"/chat", "a:b"}, {"/chat", "a\nb"},
		{"/chat:a", ""}, {"/cha", "t:a"}, {"/chat", "a" + sampleSID[:4]}, {"/chat", "\xff"}}
	for _, r := range rooms {
		prefix := MemberPrefix(r[0], r[1])
		entry := MemberEntry(r[0], r[1], sampleSID)
		if !strings.HasPrefix(entry, prefix) || entry[len(prefix):] != sampleSID {
			t.Errorf("MemberEntry(%q, %q) = %q, not its prefix %q and the sid", r[0], r[1], entry, prefix)
		}
		lo, hi := MemberRange(r[0], r[1])
		for _, o := range rooms {
			other := MemberEntry(o[0], o[1], sampleSID)
			in := "["+other >= lo && "["+other <= hi
			if same := o == r; in != same || strings.HasPrefix(other, prefix) != same {
				t.Errorf("room %q: the entry of room %q is in its range: %v", r, o, in)
			}
		}
	}
	if got, want := GlobPrefix("a*[b]?\\:"), `a\*\[b\]\?\\:*`; got != want {
		t.Errorf("GlobPrefix = %q, want %q", got, want)
	}
}
