// Package sample has a passing, a skipped and (with SAMPLE_FAIL set) a
// failing test, for testsummary's test.
package sample

import (
	"os"
	"testing"
)

func TestPasses(t *testing.T) { t.Log("not shown: the test passed") }

func TestSkips(t *testing.T) { t.Skip("redis-server is not installed") }

func TestSub(t *testing.T) {
	t.Run("skipped", func(t *testing.T) { t.Skip("haproxy is not installed") })
	t.Run("runs", func(t *testing.T) {})
}

func TestFails(t *testing.T) {
	if os.Getenv("SAMPLE_FAIL") != "" {
		t.Error("failed on purpose")
	}
}
