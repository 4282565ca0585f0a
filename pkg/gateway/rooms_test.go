package gateway

import (
	"slices"
	"testing"
)

// The room index: joins, leaves of a room and of a namespace, forgetting a
// connection, and no empty entries left behind.
func TestRoomIndex(t *testing.T) {
	var x roomIndex
	x.init()
	members := func(ns, room string) []string {
		m := x.members(ns, room)
		slices.Sort(m)
		return m
	}
	check := func(step, ns, room string, want ...string) {
		t.Helper()
		if got := members(ns, room); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: members(%q, %q) = %q, want %q", step, ns, room, got, want)
		}
	}
	x.join("", "lobby", "a")
	x.join("", "lobby", "b")
	x.join("/chat", "lobby", "a")
	x.join("/chat", "red", "a")
	x.join("/chat", "red", "a") // twice: once in the set
	check("joined", "", "lobby", "a", "b")
	check("joined", "/chat", "lobby", "a")
	check("joined", "/chat", "red", "a")
	check("joined", "/chat", "nowhere")

	x.leave("", "lobby", "b")
	check("left", "", "lobby", "a")
	x.leave("", "nowhere", "b") // unknown: no effect
	x.leave("", "lobby", "zz")

	x.leaveNamespace("/chat", "a")
	check("left /chat", "/chat", "lobby")
	check("left /chat", "/chat", "red")
	check("left /chat keeps /", "", "lobby", "a")

	x.join("/chat", "red", "b")
	x.forget("a")
	check("forgot a", "", "lobby")
	check("forgot a keeps b", "/chat", "red", "b")
	x.forget("b")
	x.forget("b")
	if len(x.rooms) != 0 || len(x.bySID) != 0 {
		t.Errorf("entries left: rooms %v, bySID %v", x.rooms, x.bySID)
	}
}
