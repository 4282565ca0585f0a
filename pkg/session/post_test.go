package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/realtime/realtime/pkg/bus"
)

// A POST's record tells a retry from a new POST (newStore: the confirm wait
// is 300 ms). Each case runs on a session of its own.
func TestPostRecord(t *testing.T) {
	ctx := context.Background()
	st, rdb := newStore(t, "gwA")
	other := New(rdb, Config{RouteRefresh: testRouteRefresh, Keys: st.Keys(), Node: "gwB", BatchConfirmWait: st.cfg.BatchConfirmWait})
	body := []byte("\ufffd5\ufffd3:::hi\ufffd5\ufffd3:::hi")
	p := Post{T: "1700000000000", Digest: PostDigest(body)}
	apply := nilPipe(t, rdb)
	open := func(t *testing.T) string {
		t.Helper()
		sid, err := st.Create(ctx, Handshake{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := poll3(st.Poll(ctx, sid, "xhr-polling", "p", "1", false)); err != nil {
			t.Fatal(err)
		}
		return sid
	}
	verdict := func(t *testing.T, s *Store, sid string, p Post) PostReply {
		t.Helper()
		r, err := s.TouchPost(ctx, sid, p)
		if err != nil {
			t.Fatal(err)
		}
		if r.Class != "poll" || len(r.Namespaces) != 1 || r.Namespaces[0] != "" {
			t.Fatalf("TouchPost class %q namespaces %q", r.Class, r.Namespaces)
		}
		return r
	}
	// commit applies a POST's packets (a message signal) with its record,
	// as a gateway's committer batch does.
	commit := func(t *testing.T, s *Store, sid, postID string, p Post) {
		t.Helper()
		msg := bus.Signal{Kind: bus.KindMessage, SID: sid, Data: "hi", Gateway: s.cfg.Node, Time: time.Now()}
		for _, w := range []bus.Write{s.PostWrite(sid, p, postID), bus.XAdd(s.Keys(), &msg)} {
			if err := apply(w); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("retry after commit", func(t *testing.T) {
		sid := open(t)
		if r := verdict(t, st, sid, p); r.Verdict != PostNew {
			t.Fatalf("first POST: verdict %v", r.Verdict)
		}
		commit(t, st, sid, "1", p)
		// The gateway died before answering: no confirmation. The retry,
		// on another gateway, waits for one, then applies nothing.
		start := time.Now()
		r := verdict(t, other, sid, p)
		for r.Verdict == PostWait {
			if r.Recheck <= 0 || r.Recheck > 20*time.Millisecond {
				t.Fatalf("recheck %v, want (0, 20ms]", r.Recheck)
			}
			time.Sleep(r.Recheck)
			r = verdict(t, other, sid, p)
		}
		if r.Verdict != PostRetry {
			t.Fatalf("retry after commit: verdict %v", r.Verdict)
		}
		if waited := time.Since(start); waited < 250*time.Millisecond || waited > 2*time.Second {
			t.Fatalf("the retry was recognized after %v, want about the confirm wait (300ms)", waited)
		}
		// Asked again (the balancer retrying once more): still a retry, at once.
		if r := verdict(t, other, sid, p); r.Verdict != PostRetry {
			t.Fatalf("second retry: verdict %v", r.Verdict)
		}
	})

	t.Run("retry before commit", func(t *testing.T) {
		sid := open(t)
		verdict(t, st, sid, p)
		// The gateway died before its commit reached Redis: the retry applies.
		if r := verdict(t, other, sid, p); r.Verdict != PostNew {
			t.Fatalf("retry of a POST never committed: verdict %v", r.Verdict)
		}
	})

	t.Run("same t and body after the confirmation", func(t *testing.T) {
		sid := open(t)
		commit(t, st, sid, "1", p)
		if err := apply(st.ConfirmPostWrite(sid, "1")); err != nil {
			t.Fatal(err)
		}
		// The client's next POST, its clock not having ticked, with the same
		// body: new.
		if r := verdict(t, other, sid, p); r.Verdict != PostNew {
			t.Fatalf("a new POST after the confirmation: verdict %v", r.Verdict)
		}
		// Committed in turn, it is unconfirmed: the first one's
		// confirmation does not count for it.
		commit(t, other, sid, "1", p)
		if r := verdict(t, st, sid, p); r.Verdict != PostWait {
			t.Fatalf("a retry of the second POST: verdict %v", r.Verdict)
		}
		// A confirmation of the first POST arriving late changes nothing.
		if err := apply(st.ConfirmPostWrite(sid, "1")); err != nil {
			t.Fatal(err)
		}
		if r := verdict(t, st, sid, p); r.Verdict != PostWait {
			t.Fatalf("after a stale confirmation: verdict %v", r.Verdict)
		}
	})

	t.Run("same t and body before the confirmation", func(t *testing.T) {
		sid := open(t)
		commit(t, st, sid, "1", p)
		// The answer was written; its confirmation is still on its way when
		// the client's next POST (same t, same body) arrives: it waits...
		r := verdict(t, other, sid, p)
		if r.Verdict != PostWait {
			t.Fatalf("before the confirmation: verdict %v", r.Verdict)
		}
		// ...and is new once the confirmation came.
		if err := apply(st.ConfirmPostWrite(sid, "1")); err != nil {
			t.Fatal(err)
		}
		if r := verdict(t, other, sid, p); r.Verdict != PostNew {
			t.Fatalf("after the confirmation: verdict %v", r.Verdict)
		}
	})

	t.Run("another t or body", func(t *testing.T) {
		sid := open(t)
		commit(t, st, sid, "1", p)
		for _, q := range []Post{{T: "1700000000001", Digest: p.Digest}, {T: p.T, Digest: PostDigest([]byte("3:::hi"))}, {T: p.T}} {
			if r := verdict(t, other, sid, q); r.Verdict != PostNew {
				t.Fatalf("POST %+v after %+v: verdict %v", q, p, r.Verdict)
			}
		}
	})

	t.Run("lifetime", func(t *testing.T) {
		sid := open(t)
		commit(t, st, sid, "1", p)
		key := st.Keys().Post(sid)
		if ttl, err := rdb.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > PostRecordTTL {
			t.Fatalf("record TTL %v, %v; want (0, %v]", ttl, err, PostRecordTTL)
		}
		if err := rdb.PExpire(ctx, key, time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if r := verdict(t, other, sid, p); r.Verdict != PostNew {
			t.Fatalf("after the record expired: verdict %v", r.Verdict)
		}
		// Ending the session deletes its record.
		commit(t, st, sid, "2", p)
		if _, err := st.End(ctx, sid, bus.ReasonServer, ""); err != nil {
			t.Fatal(err)
		}
		if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("record left after the session ended: %d, %v", n, err)
		}
		if _, err := st.TouchPost(ctx, sid, p); !errors.Is(err, ErrUnknownSession) {
			t.Fatalf("TouchPost of an ended session: %v", err)
		}
	})
}

func TestPostDigest(t *testing.T) {
	a, b := PostDigest([]byte("3:::a")), PostDigest([]byte("3:::b"))
	if a == b || len(a) != 22 || a != PostDigest([]byte("3:::a")) {
		t.Fatalf("digests %q %q", a, b)
	}
}

// A POST must be of its session's kind: an htmlfile POST to a session an
// htmlfile stream holds now (also after a websocket opened it first: the
// 0.9 client falls back to htmlfile on the same sid when its websocket
// never opened on its side), a polling POST to a polling session; none
// into a websocket session.
func TestPostTransportChecked(t *testing.T) {
	st, _ := newStore(t, "gw")
	ctx := context.Background()
	post := func(sid, tr string) error {
		_, err := st.TouchPost(ctx, sid, Post{T: "1", Transport: tr})
		return err
	}
	ws, err := st.Create(ctx, Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.OpenStream(ctx, ws, "websocket"); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"xhr-polling", "jsonp-polling", "htmlfile"} {
		if err := post(ws, tr); !errors.Is(err, ErrWrongTransport) {
			t.Errorf("%s POST into a websocket session: %v, want ErrWrongTransport", tr, err)
		}
	}
	if _, _, err := st.OpenStream(ctx, ws, "htmlfile"); err != nil { // the fallback
		t.Fatal(err)
	}
	if err := post(ws, "htmlfile"); err != nil {
		t.Errorf("htmlfile POST after the fallback to htmlfile: %v", err)
	}
	if err := post(ws, "xhr-polling"); !errors.Is(err, ErrWrongTransport) {
		t.Errorf("polling POST into an htmlfile session: %v, want ErrWrongTransport", err)
	}
	poll, err := st.Create(ctx, Handshake{})
	if err != nil {
		t.Fatal(err)
	}
	if err := post(poll, "xhr-polling"); err != nil { // opens it
		t.Fatal(err)
	}
	if err := post(poll, "jsonp-polling"); err != nil {
		t.Errorf("a polling POST of another polling transport: %v", err)
	}
	if err := post(poll, "htmlfile"); !errors.Is(err, ErrWrongTransport) {
		t.Errorf("htmlfile POST to a polling session: %v, want ErrWrongTransport", err)
	}
}
