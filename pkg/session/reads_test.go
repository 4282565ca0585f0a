package session

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// Workers read sessions only through these methods.
func TestReads(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	a, err := st.Create(ctx, Handshake{Query: "t=1", Address: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	b := NewSID()
	if err := st.CreateWithID(ctx, b, Handshake{}, `{"user":"ann"}`); err != nil {
		t.Fatal(err)
	}
	for _, sid := range []string{a, b} {
		if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
			t.Fatal(err)
		}
		if err := nilPipe(t, rdb)(st.JoinWrite(sid, "/chat", "", false)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Apply(ctx, Commit{Effects: []Effect{
		JoinEffect(a, "", "r1"), JoinEffect(a, "/chat", "r1"), JoinEffect(a, "/chat", "r2"), JoinEffect(b, "/chat", "r2"),
	}}); err != nil {
		t.Fatal(err)
	}

	if hs, err := st.Handshake(ctx, a); err != nil || hs.Query != "t=1" || hs.Address != "10.0.0.1" {
		t.Errorf("Handshake = %+v, %v", hs, err)
	}
	if ad, err := st.AuthData(ctx, a); err != nil || ad != "" {
		t.Errorf("AuthData(a) = %q, %v", ad, err)
	}
	if ad, err := st.AuthData(ctx, b); err != nil || ad != `{"user":"ann"}` {
		t.Errorf("AuthData(b) = %q, %v", ad, err)
	}
	if _, err := st.Handshake(ctx, "nobody"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("Handshake of an unknown session: %v", err)
	}
	if _, err := st.AuthData(ctx, "nobody"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("AuthData of an unknown session: %v", err)
	}
	for _, tc := range []struct {
		ns   string
		want []string
	}{{"", []string{"r1"}}, {"/chat", []string{"r1", "r2"}}, {"/other", nil}} {
		got, err := st.Rooms(ctx, a, tc.ns)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Rooms(a, %q) = %q, %v; want %q", tc.ns, got, err, tc.want)
		}
	}
	collect := func(seq func(func(string, error) bool)) []string {
		var out []string
		for sid, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sid)
		}
		slices.Sort(out)
		return out
	}
	both := []string{a, b}
	slices.Sort(both)
	if got := collect(st.Sessions(ctx, "/chat")); !slices.Equal(got, both) {
		t.Errorf("Sessions(/chat) = %q, want %q", got, both)
	}
	if got := collect(st.RoomSessions(ctx, "/chat", "r1")); !slices.Equal(got, []string{a}) {
		t.Errorf("RoomSessions(/chat, r1) = %q", got)
	}
	if n, err := st.CountNamespace(ctx, ""); err != nil || n != 2 {
		t.Errorf("CountNamespace = %d, %v", n, err)
	}
	if n, err := st.CountRoom(ctx, "/chat", "r2"); err != nil || n != 2 {
		t.Errorf("CountRoom = %d, %v", n, err)
	}
	if n, err := st.CountRoom(ctx, "", "r2"); err != nil || n != 0 {
		t.Errorf("CountRoom of the default namespace's r2 = %d, %v", n, err)
	}
}

// The sets of a namespace and of a room are one per partition: pages walk
// them in turn, every session comes exactly once over a listing, and a
// room with members in several partitions is listed once.
func TestPagesCrossPartitions(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t, "gwA")
	var all []string
	parts := map[int]bool{}
	for range 40 {
		sid, err := st.Create(ctx, Handshake{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.OpenStream(ctx, sid, "websocket"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(ctx, Commit{Effects: []Effect{JoinEffect(sid, "", "r"), JoinEffect(sid, "", "s")}}); err != nil {
			t.Fatal(err)
		}
		all = append(all, sid)
		parts[st.Keys().PartitionOf(sid)] = true
	}
	if len(parts) < 2 {
		t.Fatalf("40 sessions in %d partitions", len(parts))
	}
	slices.Sort(all)
	for _, room := range []string{"", "r"} {
		for _, count := range []int64{1, 3, 100} {
			var got []string
			var cursor uint64
			for pages := 0; ; pages++ {
				ids, next, err := st.SessionsPage(ctx, "", room, cursor, count)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids...)
				if cursor = next; cursor == 0 {
					break
				}
				if pages > 200 {
					t.Fatal("the pages never end")
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, all) {
				t.Errorf("room %q, %d a page: %d ids, want the %d sessions once each", room, count, len(got), len(all))
			}
		}
	}
	if _, _, err := st.SessionsPage(ctx, "", "", uint64(st.Keys().Partitions())<<pageShift, 10); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a cursor past the partitions: %v", err)
	}
	var rooms []string
	var cursor uint64
	for {
		page, next, err := st.RoomsPage(ctx, "", cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(rooms)
	if !slices.Equal(rooms, []string{"r", "s"}) {
		t.Errorf("RoomsPage listed %q, want r and s once each", rooms)
	}
	if n, err := st.CountRoom(ctx, "", "r"); err != nil || n != 40 {
		t.Errorf("CountRoom = %d, %v", n, err)
	}
}
