package bus

import "testing"

// The examples of the Redis Cluster specification ("Key distribution model",
// "Hash tags") and slots CLUSTER KEYSLOT answered on Redis 7.0.
func TestSlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3 % SlotCount}, // the specification's CRC16 check value
		{"", 0},
		{"foo", 12182},
		{"bar", 5061},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"user1000", 3443},
		{"foo{}{bar}", 8363},    // empty tag: the whole key
		{"foo{{bar}}zap", 4015}, // the tag is "{bar"
		{"foo{bar}{zap}", 5061}, // the first tag only
		{"{bar", 4015},          // no closing brace: the whole key
	} {
		if got := Slot(tc.key); got != tc.want {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// Partition tags spread partitions evenly over the slot space: over M
// primaries with equal contiguous ranges, each holds n/M partitions within
// one, for every n and M the cluster would run with.
func TestPartitionTagsSpreadEvenly(t *testing.T) {
	for _, n := range []int{1, 3, 16, 64, 100, MaxPartitions} {
		tags := PartitionTags(n)
		seen := map[string]bool{}
		for p, tag := range tags {
			if s := Slot("{" + tag + "}"); s < p*SlotCount/n || s >= (p+1)*SlotCount/n {
				t.Errorf("n=%d: partition %d's tag %q hashes to slot %d, out of its range", n, p, tag, s)
			}
			if seen[tag] {
				t.Errorf("n=%d: tag %q twice", n, tag)
			}
			seen[tag] = true
		}
		for _, m := range []int{1, 2, 3, 5, 8} {
			per := make([]int, m)
			for _, tag := range tags {
				per[Slot(tag)*m/SlotCount]++
			}
			lo, hi := per[0], per[0]
			for _, c := range per {
				lo, hi = min(lo, c), max(hi, c)
			}
			if n >= m && hi-lo > 1 {
				t.Errorf("n=%d over %d primaries: %v partitions each", n, m, per)
			}
		}
	}
	if got := PartitionTags(16); got[0] != "0" && got[0][:2] != "0." {
		t.Errorf("partition 0's tag %q", got[0])
	}
}
