package bus

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "rt:"

// DefaultPartitions is the number of signal streams when none is configured.
const DefaultPartitions = 16

// GroupName is the default consumer group of the workers on every
// partition stream: the group of workers that name no app (ConsumerConfig
// Group). Each app (a set of workers serving the same namespaces) reads the
// partitions through a group of its own, named after it, so that every app
// sees every signal (docs/redis.md, "Apps").
const GroupName = "workers"

// ValidGroup checks the name of a consumer group: 1 to 64 ASCII letters,
// digits, '-', '_', '.' and '+' (it becomes part of key names).
func ValidGroup(group string) error {
	if len(group) == 0 || len(group) > 64 {
		return fmt.Errorf("%w: %q must be 1 to 64 bytes", ErrBadGroup, group)
	}
	for i := 0; i < len(group); i++ {
		c := group[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.+", c) >= 0) {
			return fmt.Errorf("%w: %q has %q", ErrBadGroup, group, c)
		}
	}
	return nil
}

// ErrBadGroup is wrapped by ValidGroup's errors.
var ErrBadGroup = errors.New("bus: bad consumer group name")

// RoomSeparator joins a namespace and a room into the room's name in a
// session's rooms set and in the room keys: "<ns>:<room>". Namespace names
// never contain ':' (the packet grammar forbids it), so the name is
// unambiguous.
const RoomSeparator = ":"

// RoomMember returns the name of room of namespace ns as a session's rooms
// set holds it: "<ns>:<room>". RoomMember(ns, "") is the prefix every room
// of ns starts with.
func RoomMember(ns, room string) string { return ns + RoomSeparator + room }

// A KeyPattern is one family of Redis keys (or pub/sub channels). A
// pattern of the whole cluster names prefix + Head + part + Tail; a
// pattern of a partition (Partitioned) names prefix + "{" + tag + "}:" +
// Head + part + Tail, where tag is the partition's hash tag
// (PartitionTags): every key of a partition, the session keys of its
// sessions included, hashes to the partition's Redis Cluster slot. Part
// says what the variable part is, as docs/redis.md writes it: "<sid>",
// "<ns>", "<ns>:<room>" (RoomMember), "<node>", "<group>",
// "<node>:<shard>", or "" for a single name. Keys has one method per
// pattern; the Lua scripts of pkg/session build the names of keys they
// learn from data (the sets of a session being ended, the route stream of
// the gateway holding it) from these patterns, expanded into their source
// from Go, so every name has this one owner.
type KeyPattern struct {
	Name        string // short name: the head's first word, e.g. "s" or "gwss"
	Partitioned bool   // the key belongs to one partition and carries its tag
	Head        string
	Part        string
	Tail        string
}

// Doc returns the pattern as docs/redis.md writes it, e.g. "<P>{p}:s:<sid>"
// ({p} standing for the partition's hash tag).
func (p KeyPattern) Doc() string {
	if p.Partitioned {
		return "<P>{p}:" + p.Head + p.Part + p.Tail
	}
	return "<P>" + p.Head + p.Part + p.Tail
}

// The key patterns, in the order of docs/redis.md.
var (
	keyStream      = KeyPattern{"sig", true, "sig", "", ""}
	keyDead        = KeyPattern{"dead", true, "dead", "", ""}
	keyRouteStream = KeyPattern{"gw", true, "gw:", "<node>", ""}
	keyReply       = KeyPattern{"reply", false, "reply:", "<node>", ""}
	keySession     = KeyPattern{"s", true, "s:", "<sid>", ""}
	keyMailbox     = KeyPattern{"mb", true, "mb:", "<sid>", ""}
	keyNamespaces  = KeyPattern{"ns", true, "ns:", "<sid>", ""}
	keyRooms       = KeyPattern{"rooms", true, "rooms:", "<sid>", ""}
	keyAcks        = KeyPattern{"acks", true, "acks:", "<sid>", ""}
	keyConfirmed   = KeyPattern{"cf", true, "cf:", "<sid>", ""}
	keyKick        = KeyPattern{"kick", true, "kick:", "<sid>", ""}
	keyPost        = KeyPattern{"post", true, "post:", "<sid>", ""}
	keyDeadlines   = KeyPattern{"deadlines", true, "deadlines", "", ""}
	keyMembers     = KeyPattern{"members", true, "members", "", ""}
	keyPollMembers = KeyPattern{"pmembers", true, "pmembers", "", ""}
	keyRoomIndex   = KeyPattern{"roomidx", true, "roomidx", "", ""}
	keyGateways    = KeyPattern{"gws", false, "gws", "", ""}
	keyAlive       = KeyPattern{"gwalive", false, "gwalive:", "<node>", ""}
	keyGwStreams   = KeyPattern{"gwss", true, "gwss:", "<node>", ""}
	keyHolders     = KeyPattern{"holders", true, "holders", "", ""}
	keyRouting     = KeyPattern{"routing", true, "routing", "", ""}
	keyWorkers     = KeyPattern{"workers", false, "workers", "", ""}
	keyLease       = KeyPattern{"lease", true, "lease", "", ""}
	keyGroupWork   = KeyPattern{"groupworkers", false, "groupworkers:", "<group>", ""}
	keyGroupLease  = KeyPattern{"grouplease", true, "grouplease:", "<group>", ""}
	keyGroupServes = KeyPattern{"groupserves", false, "groupserves:", "<group>", ""}
	keyHandovers   = KeyPattern{"handovers", false, "handovers:", "<group>", ""}
	keyCommit      = KeyPattern{"cm", true, "cm:", "<node>", ""}
	keyOutbox      = KeyPattern{"out", true, "out", "", ""}
	keyInbox       = KeyPattern{"in", true, "in", "", ""}
)

// KeyPatterns returns every key and channel pattern of the cluster, one
// per Keys method that names keys.
func KeyPatterns() []KeyPattern {
	return []KeyPattern{keyStream, keyDead, keyRouteStream, keyReply,
		keySession, keyMailbox, keyNamespaces, keyRooms, keyAcks, keyConfirmed, keyKick, keyPost,
		keyDeadlines, keyMembers, keyPollMembers, keyRoomIndex,
		keyGateways, keyAlive, keyGwStreams, keyHolders, keyRouting, keyWorkers, keyLease, keyGroupWork, keyGroupLease,
		keyGroupServes, keyHandovers, keyCommit, keyOutbox, keyInbox}
}

// Keys names every Redis key and pub/sub channel of the cluster under one
// prefix (docs/redis.md lists them). The zero value is not usable; use
// NewKeys.
type Keys struct {
	prefix     string
	partitions int
	tags       *[]string // PartitionTags(partitions), shared by every Keys
}

// NewKeys returns the key names for prefix (DefaultPrefix when empty) and
// partitions (DefaultPartitions when <= 0, at most MaxPartitions: more
// panics; cli checks the flag).
func NewKeys(prefix string, partitions int) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return Keys{prefix: prefix, partitions: partitions, tags: sharedTags(partitions)}
}

// tagsByCount holds PartitionTags(n) by n, computed once: a pointer to it
// keeps Keys comparable with ==.
var tagsByCount sync.Map // int -> *[]string

func sharedTags(n int) *[]string {
	if t, ok := tagsByCount.Load(n); ok {
		return t.(*[]string)
	}
	tags := PartitionTags(n)
	t, _ := tagsByCount.LoadOrStore(n, &tags)
	return t.(*[]string)
}

// IsZero reports whether k is the zero Keys (a config that left its Keys
// unset).
func (k Keys) IsZero() bool { return k.prefix == "" }

// Prefix returns the key prefix, e.g. "rt:". Apps may put keys of their
// own under it; the cluster's names come from the other methods.
func (k Keys) Prefix() string { return k.prefix }

// Partitions returns the number of partition streams.
func (k Keys) Partitions() int { return k.partitions }

// PartitionPrefix returns what every key of partition p starts with:
// <prefix>{tag}:, tag being the partition's hash tag (PartitionTags).
func (k Keys) PartitionPrefix(p int) string { return k.prefix + "{" + (*k.tags)[p] + "}:" }

// PartitionOf returns the partition of session sid (Partition).
func (k Keys) PartitionOf(sid string) int { return Partition(sid, k.partitions) }

func (k Keys) name(p KeyPattern, part string) string { return k.prefix + p.Head + part + p.Tail }

// in names the key of pattern pat (Partitioned) of partition p.
func (k Keys) in(p int, pat KeyPattern, part string) string {
	return k.prefix + "{" + (*k.tags)[p] + "}:" + pat.Head + part + pat.Tail
}

// of names the key of pattern pat of session sid, in its partition.
func (k Keys) of(pat KeyPattern, sid string) string { return k.in(k.PartitionOf(sid), pat, sid) }

// Stream returns the key of partition p's signal stream: <prefix>{p}:sig.
func (k Keys) Stream(p int) string { return k.in(p, keyStream, "") }

// StreamFor returns the stream key for a session.
func (k Keys) StreamFor(sid string) string { return k.Stream(k.PartitionOf(sid)) }

// StreamPartition returns the partition whose signal stream is stream, or
// -1 for a key that is none.
func (k Keys) StreamPartition(stream string) int {
	for p := range k.partitions {
		if k.Stream(p) == stream {
			return p
		}
	}
	return -1
}

// DeadLetter returns the stream holding poison signals of partition p:
// <prefix>{p}:dead.
func (k Keys) DeadLetter(p int) string { return k.in(p, keyDead, "") }

// RouteStream returns the route stream of gateway node for partition p,
// every route message committed for it about sessions of the partition
// (see AppendRoute): <prefix>{p}:gw:<node>.
func (k Keys) RouteStream(p int, node string) string { return k.in(p, keyRouteStream, node) }

// ReplyChannel returns the channel on which a worker (or emitter) receives
// client answers to its server-to-client emits: <prefix>reply:<node>.
func (k Keys) ReplyChannel(node string) string { return k.name(keyReply, node) }

// Session returns the hash of session sid: <prefix>{p}:s:<sid>.
func (k Keys) Session(sid string) string { return k.of(keySession, sid) }

// Mailbox returns the list of packets waiting for a polling session's next
// poll: <prefix>{p}:mb:<sid>.
func (k Keys) Mailbox(sid string) string { return k.of(keyMailbox, sid) }

// SessionNamespaces returns the set of namespaces session sid is connected
// to: <prefix>{p}:ns:<sid>.
func (k Keys) SessionNamespaces(sid string) string { return k.of(keyNamespaces, sid) }

// SessionRooms returns the set of rooms (RoomMember) session sid is in:
// <prefix>{p}:rooms:<sid>.
func (k Keys) SessionRooms(sid string) string { return k.of(keyRooms, sid) }

// Acks returns the hash of session sid's server ack ids to reply channels:
// <prefix>{p}:acks:<sid>.
func (k Keys) Acks(sid string) string { return k.of(keyAcks, sid) }

// Confirmed returns the key holding the last poll of session sid whose
// answer was written whole: <prefix>{p}:cf:<sid>.
func (k Keys) Confirmed(sid string) string { return k.of(keyConfirmed, sid) }

// Kick returns the key holding the last packet of a polling session the
// server ended, for its next poll: <prefix>{p}:kick:<sid>.
func (k Keys) Kick(sid string) string { return k.of(keyKick, sid) }

// Post returns the hash recording the last POST of session sid whose
// packets were committed, so that a retry of it is told from a new POST:
// <prefix>{p}:post:<sid>.
func (k Keys) Post(sid string) string { return k.of(keyPost, sid) }

// Deadlines returns the sorted set of partition p's sessions by the unix
// ms at which they end unless contacted: <prefix>{p}:deadlines.
func (k Keys) Deadlines(p int) string { return k.in(p, keyDeadlines, "") }

// Members returns partition p's sorted set of memberships: one entry per
// session of the partition and namespace it is connected to, and per room
// it is in (MemberEntry), all of score 0, so that one namespace's or
// room's members are a lexicographic range (MemberRange):
// <prefix>{p}:members. A script that joins or ends a session names this
// one key whatever the rooms (no key per room to build from data).
func (k Keys) Members(p int) string { return k.in(p, keyMembers, "") }

// PollingMembers returns the sorted set of partition p's memberships of
// polling sessions, as Members (a broadcast's share of the partition goes
// to their mailboxes): <prefix>{p}:pmembers.
func (k Keys) PollingMembers(p int) string { return k.in(p, keyPollMembers, "") }

// RoomIndex returns the sorted set of the rooms partition p's sessions are
// in: RoomMember(ns, room) by the number of the partition's members (the
// server API lists a namespace's rooms from it): <prefix>{p}:roomidx.
func (k Keys) RoomIndex(p int) string { return k.in(p, keyRoomIndex, "") }

// MemberEntry returns the entry of Members and PollingMembers for session
// sid in room of namespace ns (room "": connected to the namespace):
// MemberPrefix(ns, room) followed by sid.
func MemberEntry(ns, room, sid string) string { return MemberPrefix(ns, room) + sid }

// MemberPrefix returns what every entry of the members of room of
// namespace ns (room "": of the namespace) starts with, and only theirs:
// "<n>:<ns>:<room>", n the decimal byte length of "<ns>:<room>"
// (RoomMember). The length makes the prefix unambiguous whatever bytes a
// room name holds: an entry that starts with it names the same length,
// hence the same room.
func MemberPrefix(ns, room string) string {
	rm := RoomMember(ns, room)
	return strconv.Itoa(len(rm)) + ":" + rm
}

// MemberRange returns the ZRANGE BYLEX bounds of the entries
// MemberPrefix(ns, room) starts: "[<prefix>" and "[<prefix>\xff" (no entry
// holds the byte 0xff after the prefix: session ids are URL-safe base64).
func MemberRange(ns, room string) (min, max string) {
	p := MemberPrefix(ns, room)
	return "[" + p, "[" + p + "\xff"
}

// globEscape escapes the characters Redis glob patterns give a meaning.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// GlobPrefix returns the Redis MATCH pattern of the strings that start
// with prefix: prefix with its glob characters (* ? [ ] \) escaped, then *.
func GlobPrefix(prefix string) string { return globEscape(prefix) + "*" }

// Gateways returns the set of gateway node ids: <prefix>gws.
func (k Keys) Gateways() string { return k.name(keyGateways, "") }

// GatewayAlive returns the liveness key of gateway node (a TTL renewed while
// it runs): <prefix>gwalive:<node>.
func (k Keys) GatewayAlive(node string) string { return k.name(keyAlive, node) }

// GatewayStreams returns the set of partition p's streaming sessions that
// gateway node holds: <prefix>{p}:gwss:<node>.
func (k Keys) GatewayStreams(p int, node string) string { return k.in(p, keyGwStreams, node) }

// StreamHolders returns the set of the gateways that hold streams of
// partition p's sessions (those whose GatewayStreams(p, node) is not
// empty), to which a broadcast's share of the partition goes:
// <prefix>{p}:holders.
func (k Keys) StreamHolders(p int) string { return k.in(p, keyHolders, "") }

// RouteGateways returns the set of the gateways whose route streams of
// partition p the partition's sessions may name (as the holder of a stream
// or of a parked poll): <prefix>{p}:routing. A gateway joins it once every
// process can know of it (session.Store.Alive) and leaves it when it is
// forgotten; a session script that finds a member its caller did not
// declare writes nothing (docs/redis.md, "Declared keys").
func (k Keys) RouteGateways(p int) string { return k.in(p, keyRouting, "") }

// Workers returns the sorted set of live workers by the unix ms of their
// last heartbeat: <prefix>workers.
func (k Keys) Workers() string { return k.name(keyWorkers, "") }

// Lease returns the key naming the worker that owns partition p (with a
// TTL the owner renews): <prefix>{p}:lease.
func (k Keys) Lease(p int) string { return k.in(p, keyLease, "") }

// GroupWorkers returns Workers for consumer group group: Workers() for
// GroupName, else <prefix>groupworkers:<group>.
func (k Keys) GroupWorkers(group string) string {
	if group == GroupName {
		return k.Workers()
	}
	return k.name(keyGroupWork, group)
}

// GroupLease returns Lease for consumer group group: Lease(p) for GroupName,
// else <prefix>{p}:grouplease:<group>. Each group shares the partitions
// out among its own workers.
func (k Keys) GroupLease(group string, p int) string {
	if group == GroupName {
		return k.Lease(p)
	}
	return k.in(p, keyGroupLease, group)
}

// GroupServes returns the hash of what each worker of consumer group group
// serves, as it publishes it for the others (ConsumerConfig.Serves;
// pkg/worker writes the JSON docs/redis.md describes): worker name to
// description, <prefix>groupserves:<group>.
func (k Keys) GroupServes(group string) string { return k.name(keyGroupServes, group) }

// Handovers returns the hash of the partitions of consumer group group that
// a worker handed over to another one (Outcome.HandOver): partition number
// to {"to":…,"from":…}, <prefix>handovers:<group>.
func (k Keys) Handovers(group string) string { return k.name(keyHandovers, group) }

// CommitMarker returns the key in which the Committer of node writes the
// number of each batch it commits on partition p (its shard of the
// partition), in the batch's transaction, so that a batch whose answer was
// lost can be told applied or not: <prefix>{p}:cm:<node>.
func (k Keys) CommitMarker(p int, node string) string { return k.in(p, keyCommit, node) }

// Outbox returns the stream of partition p's outbox: the effects a
// worker's commit on the partition made on sessions of other partitions,
// one entry per target partition, until they are applied there:
// <prefix>{p}:out.
func (k Keys) Outbox(p int) string { return k.in(p, keyOutbox, "") }

// Inbox returns the hash in which partition p records, for each partition
// whose outbox entries it applied, the id of the last one: <prefix>{p}:in.
func (k Keys) Inbox(p int) string { return k.in(p, keyInbox, "") }

// Partition maps a session id to its partition: FNV-1a 32 of the id, modulo n.
func Partition(sid string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(sid))
	return int(h.Sum32() % uint32(n))
}
