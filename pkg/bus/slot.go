package bus

import (
	"strconv"
	"strings"
)

// SlotCount is the number of hash slots of a Redis Cluster (Redis Cluster
// specification, "Key distribution model").
const SlotCount = 16384

// Slot returns the Redis Cluster hash slot of key, 0 to SlotCount-1: CRC16
// (XMODEM) of the key, or of its hash tag (the part between the first '{'
// and the next '}', when that part is not empty), modulo SlotCount. The
// rules are the Redis Cluster specification's ("Hash tags"); Redis's own
// CLUSTER KEYSLOT agrees (slot_test.go checks it against a real cluster
// node when one is given).
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key)) % SlotCount
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// MaxPartitions is the most partitions PartitionTags spreads over the slot
// space (each partition gets at least 64 slots to find its tag in).
const MaxPartitions = 256

// PartitionTags returns the hash tag of each of n partitions (1 <=
// n <= MaxPartitions): partition p's tag hashes (Slot) into the p-th of n
// equal ranges of the slot space, so that a Redis Cluster whose primaries
// own equal contiguous ranges (what redis-cli --cluster create makes) holds
// n/primaries partitions each, within one. The tag is the partition number
// when its slot already falls in range, else the number followed by "."
// and the smallest counter that puts it there ("3.17"). The result depends
// on n alone; keys that hold a partition's tag ({3.17}) share its slot.
func PartitionTags(n int) []string {
	if n < 1 || n > MaxPartitions {
		panic("bus: PartitionTags: partitions out of range")
	}
	tags := make([]string, n)
	for p := range n {
		lo, hi := p*SlotCount/n, (p+1)*SlotCount/n
		tag := strconv.Itoa(p)
		for i := 1; ; i++ {
			if s := Slot(tag); s >= lo && s < hi {
				break
			}
			tag = strconv.Itoa(p) + "." + strconv.Itoa(i)
		}
		tags[p] = tag
	}
	return tags
}
