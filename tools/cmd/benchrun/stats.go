package main

import (
	"fmt"
	"math"
	"slices"
)

// Direction says which way a metric improves.
type Direction int

const (
	// HigherBetter marks throughputs (acks/s, connects/s).
	HigherBetter Direction = iota
	// LowerBetter marks latencies, memory and error counts.
	LowerBetter
)

func (d Direction) String() string {
	if d == HigherBetter {
		return "higher"
	}
	return "lower"
}

// TargetKind says what a Target compares.
type TargetKind int

// The ratio is cluster/reference for an issue's target, cluster/baseline
// for a Metric's Tolerance.
const (
	// RatioAtLeast is met when the ratio >= Limit.
	RatioAtLeast TargetKind = iota + 1
	// RatioAtMost is met when the ratio <= Limit.
	RatioAtMost
	// ClusterAtMost is met when the cluster's own median <= Limit.
	ClusterAtMost
)

// Target is one of the goals for a metric, or a tolerance against
// the baseline.
type Target struct {
	Kind  TargetKind
	Limit float64
	Unit  string // ClusterAtMost: the unit of Limit, for the table
}

// String renders the target for the table, e.g. "ratio ≥ 1" or "≤ 8 KiB".
func (t Target) String() string {
	switch t.Kind {
	case RatioAtLeast:
		return "ratio ≥ " + trimFloat(t.Limit)
	case RatioAtMost:
		return "ratio ≤ " + trimFloat(t.Limit)
	case ClusterAtMost:
		s := "cluster ≤ " + trimFloat(t.Limit)
		if t.Unit != "" {
			s += " " + t.Unit
		}
		return s
	}
	return ""
}

// Verdict is the outcome of checking a Target.
type Verdict string

// The verdicts; NoData when a median or the ratio is missing.
const (
	Met    Verdict = "met"
	Missed Verdict = "missed"
	NoData Verdict = "n/a"
)

// Check returns whether cluster (median) and ratio (cluster/reference, or
// cluster/baseline for a tolerance) meet the target. A NaN input that the target needs gives NoData.
func (t Target) Check(cluster, ratio float64) Verdict {
	var v float64
	switch t.Kind {
	case RatioAtLeast, RatioAtMost:
		v = ratio
	case ClusterAtMost:
		v = cluster
	default:
		return NoData
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return NoData
	}
	ok := false
	switch t.Kind {
	case RatioAtLeast:
		ok = v >= t.Limit
	case RatioAtMost, ClusterAtMost:
		ok = v <= t.Limit
	}
	if ok {
		return Met
	}
	return Missed
}

// Median returns the median of xs (the mean of the two middle values for an
// even count), or NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratio returns cluster/reference, or NaN when either is missing or the
// reference is zero (no meaningful ratio: e.g. missing deliveries 0 vs 0).
func Ratio(cluster, reference float64) float64 {
	if math.IsNaN(cluster) || math.IsNaN(reference) || reference == 0 {
		return math.NaN()
	}
	return cluster / reference
}

// Better reports whether a ratio favours the cluster in direction d
// (false for NaN).
func Better(d Direction, ratio float64) bool {
	if math.IsNaN(ratio) {
		return false
	}
	if d == HigherBetter {
		return ratio > 1
	}
	return ratio < 1
}

// trimFloat formats a limit without trailing zeros: 1, 2, 8, 0.5.
func trimFloat(f float64) string {
	return fmt.Sprintf("%g", f)
}

// formatValue formats a median for the table: "—" for NaN, fewer decimals
// for larger values.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// formatRatio formats a ratio as "1.23×", or "—" for NaN.
func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r)
}
