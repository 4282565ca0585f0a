//go:build race

package protocol

// raceEnabled reports a -race build: its sync.Pool drops items at random, so
// code that takes buffers from a pool (encoding/json's scanner) allocates
// more than it does in a normal build.
const raceEnabled = true
