package bus

import (
	"hash/fnv"
	"strconv"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "rt:"

// DefaultPartitions is the number of signal streams when none is configured.
const DefaultPartitions = 16

// GroupName is the consumer group of the workers on every partition stream.
const GroupName = "workers"

// Keys names the bus's Redis keys and channels under one prefix.
// The zero value is not usable; use NewKeys.
type Keys struct {
	prefix     string
	partitions int
}

// NewKeys returns the key names for prefix (DefaultPrefix when empty) and
// partitions (DefaultPartitions when <= 0).
func NewKeys(prefix string, partitions int) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return Keys{prefix: prefix, partitions: partitions}
}

// Prefix returns the key prefix, e.g. "rt:".
func (k Keys) Prefix() string { return k.prefix }

// Partitions returns the number of partition streams.
func (k Keys) Partitions() int { return k.partitions }

// Stream returns the key of partition p's signal stream: <prefix>sig:{p}.
func (k Keys) Stream(p int) string { return k.prefix + "sig:{" + strconv.Itoa(p) + "}" }

// StreamFor returns the stream key for a session.
func (k Keys) StreamFor(sid string) string { return k.Stream(Partition(sid, k.partitions)) }

// GatewayChannel returns the pub/sub channel of one gateway: <prefix>gw:<node>.
func (k Keys) GatewayChannel(node string) string { return k.prefix + "gw:" + node }

// BroadcastChannel returns the channel every gateway subscribes to.
func (k Keys) BroadcastChannel() string { return k.prefix + "bcast" }

// ReplyChannel returns the channel on which a worker (or emitter) receives
// client answers to its server-to-client emits.
func (k Keys) ReplyChannel(node string) string { return k.prefix + "reply:" + node }

// DeadLetter returns the stream holding poison signals of partition p.
func (k Keys) DeadLetter(p int) string { return k.prefix + "dead:{" + strconv.Itoa(p) + "}" }

// Partition maps a session id to its partition: FNV-1a 32 of the id, modulo n.
func Partition(sid string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(sid))
	return int(h.Sum32() % uint32(n))
}
