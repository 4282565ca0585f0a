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
