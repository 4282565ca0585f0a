// Package chat is django-realtime's example chat, grown up for a cluster:
// nicknames unique per room, rooms, join and leave notices and a live user
// list. Its page is web/chat (serve it with the gateway's -static flag).
//
// It lives in namespace /chatroom, so that it runs beside the echo app in
// one worker. Events from the client, each answered through its ack (a
// refusal is {"error": text}, sent with Event.Reject):
//
//	nick [name, key?] -> {"nick"}; in a room the others get notice "a is now b"
//	join [room]       -> leaves the current room, joins this one; {"room","nick","users"}
//	say  [text, id?]  -> {"ok": true, "ts"}; the room gets said {"nick","text","ts","id"?}
//
// Events to the client: notice {"kind","text","ts"} (kind is join, back,
// leave or rename), users [names…] (the room's user list, sorted, after
// every change), said. Times (ts) are Unix milliseconds.
//
// A nickname is unique per room (compared case-insensitively): join and
// nick refuse one that another session holds there. The optional key is a
// random secret the page makes once per page load and sends with every
// nick: when a page reconnects (a new session, since 0.9 clients never
// resume one) before its old session has ended, the old session holds its
// nickname. A holder with the same key is that old session: join ends it
// (Emitter.Disconnect) and takes its place, and the room hears "a is back"
// instead of a leave and a join. The optional id of say is a client message
// id: a line sent again under the same key and id (a page resending what
// it could not confirm before a reconnect) is acked but not said twice.
//
// State the cluster shares lives in Redis under <prefix>chat:
//
//	chat:s:<sid>           hash  nick, room, key of one session (deleted on disconnect)
//	chat:room:<room>       hash  sid -> nick: the room's members
//	chat:names:<room>      hash  folded nick -> sid: who holds a nickname there
//	chat:said:<key>:<id>   string  the signal that said a line (expires after SaidTTL)
//
// Writes are idempotent (HSET, HDEL, delete-if-owner), since a handler may
// run again after a worker crash.
package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/worker"
)

// Limits on what clients send, in characters (nick, room, text) or bytes
// (key, id).
const (
	MaxNick = 32
	MaxRoom = 64
	MaxText = 2000
	MaxKey  = 64
	MaxID   = 64
)

// SaidTTL is how long a line's client id is remembered against duplicates:
// longer than any page's reconnect.
const SaidTTL = 10 * time.Minute

// Namespace is the chat's namespace.
const Namespace = "/chatroom"

// Register installs the chat handlers on w.
func Register(w *worker.Worker) {
	c := &chat{w: w, prefix: w.Keys().Prefix() + "chat:"}
	ns := w.Namespace(Namespace)
	ns.OnEvent("nick", c.nick)
	ns.OnEvent("join", c.join)
	ns.OnEvent("say", c.say)
	ns.OnDisconnect(c.gone)
}

type chat struct {
	w      *worker.Worker
	prefix string
}

func (c *chat) sess(sid string) string     { return c.prefix + "s:" + sid }
func (c *chat) members(room string) string { return c.prefix + "room:" + room }
func (c *chat) names(room string) string   { return c.prefix + "names:" + room }

// state is what the chat keeps of one session.
type state struct{ nick, room, key string }

func (c *chat) load(ctx context.Context, sid string) (state, error) {
	m, err := c.w.Redis().HGetAll(ctx, c.sess(sid)).Result()
	if err != nil {
		return state{}, fmt.Errorf("chat: state of %s: %w", sid, err)
	}
	return state{nick: m["nick"], room: m["room"], key: m["key"]}, nil
}

// refusal is the ack of a refused event.
func refusal(format string, args ...any) map[string]string {
	return map[string]string{"error": fmt.Sprintf(format, args...)}
}

func notice(kind, text string) map[string]any {
	return map[string]any{"kind": kind, "text": text, "ts": time.Now().UnixMilli()}
}

func (c *chat) nick(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
	var name, key string
	if err := ev.Decode(&name, &key); err != nil {
		return ev.Reject(refusal("nick takes a name (and the page's key)"))
	}
	name = strings.TrimSpace(name)
	if msg := checkName(name, MaxNick, "A nickname"); msg != "" {
		return ev.Reject(refusal("%s", msg))
	}
	if len(key) > MaxKey {
		return ev.Reject(refusal("the key has at most %d bytes", MaxKey))
	}
	st, err := c.load(ctx, s.ID())
	if err != nil {
		return err
	}
	if key == "" {
		key = st.key
	}
	rdb := c.w.Redis()
	if st.room != "" && fold(name) != fold(st.nick) {
		ok, _, err := c.claim(ctx, s.ID(), st.room, name, key)
		if err != nil {
			return err
		}
		if !ok {
			return ev.Reject(taken(name, st.room))
		}
		if err := c.release(ctx, st.room, st.nick, s.ID()); err != nil {
			return err
		}
	}
	if err := rdb.HSet(ctx, c.sess(s.ID()), "nick", name, "key", key).Err(); err != nil {
		return fmt.Errorf("chat: nick: %w", err)
	}
	if st.room != "" && st.nick != name {
		if err := rdb.HSet(ctx, c.members(st.room), s.ID(), name).Err(); err != nil {
			return fmt.Errorf("chat: nick: %w", err)
		}
		if err := s.In(st.room).Emit("notice", notice("rename", st.nick+" is now "+name)); err != nil {
			return err
		}
		users, err := c.users(ctx, st.room)
		if err != nil {
			return err
		}
		if err := s.In(st.room).Emit("users", users); err != nil {
			return err
		}
	}
	return ev.Ack(map[string]string{"nick": name})
}

func (c *chat) join(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
	var room string
	if err := ev.Decode(&room); err != nil {
		return ev.Reject(refusal("join takes a room name"))
	}
	room = strings.TrimSpace(room)
	if msg := checkName(room, MaxRoom, "A room name"); msg != "" {
		return ev.Reject(refusal("%s", msg))
	}
	st, err := c.load(ctx, s.ID())
	if err != nil {
		return err
	}
	if st.nick == "" {
		return ev.Reject(refusal("Choose a nickname first"))
	}
	if st.room == room {
		// Already there as far as the chat knows; the session's committed
		// rooms tell whether an earlier run of this handler got as far as
		// the join itself.
		rooms, err := s.Rooms(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(rooms, room) {
			users, err := c.users(ctx, room)
			if err != nil {
				return err
			}
			return ev.Ack(map[string]any{"room": room, "nick": st.nick, "users": users})
		}
	}
	ok, replaced, err := c.claim(ctx, s.ID(), room, st.nick, st.key)
	if err != nil {
		return err
	}
	if !ok {
		return ev.Reject(taken(st.nick, room))
	}
	if st.room != "" && st.room != room {
		if err := c.leave(ctx, s, st.room, st.nick, notice("leave", st.nick+" left for "+room)); err != nil {
			return err
		}
	}
	rdb := c.w.Redis()
	if err := rdb.HSet(ctx, c.sess(s.ID()), "room", room).Err(); err != nil {
		return fmt.Errorf("chat: join: %w", err)
	}
	if err := rdb.HSet(ctx, c.members(room), s.ID(), st.nick).Err(); err != nil {
		return fmt.Errorf("chat: join: %w", err)
	}
	if err := s.Join(room); err != nil {
		return err
	}
	n := notice("join", st.nick+" joined")
	if replaced {
		n = notice("back", st.nick+" is back")
	}
	if err := s.To(room).Emit("notice", n); err != nil {
		return err
	}
	users, err := c.users(ctx, room)
	if err != nil {
		return err
	}
	if err := s.To(room).Emit("users", users); err != nil {
		return err
	}
	return ev.Ack(map[string]any{"room": room, "nick": st.nick, "users": users})
}

func (c *chat) say(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
	var text, id string
	if err := ev.Decode(&text, &id); err != nil {
		return ev.Reject(refusal("say takes some text (and a message id)"))
	}
	if strings.TrimSpace(text) == "" {
		return ev.Reject(refusal("say takes some text"))
	}
	if n := utf8.RuneCountInString(text); n > MaxText {
		return ev.Reject(refusal("That line has %d characters; the limit is %d", n, MaxText))
	}
	if len(id) > MaxID {
		return ev.Reject(refusal("a message id has at most %d bytes", MaxID))
	}
	st, err := c.load(ctx, s.ID())
	if err != nil {
		return err
	}
	if st.room == "" || st.nick == "" {
		return ev.Reject(refusal("Join a room first"))
	}
	ts := ev.Signal.Time.UnixMilli()
	if ev.Signal.Time.IsZero() {
		ts = time.Now().UnixMilli()
	}
	if id != "" && st.key != "" {
		dup, err := c.said(ctx, st.key, id, s.ID()+" "+ev.Signal.ID)
		if err != nil {
			return err
		}
		if dup {
			return ev.Ack(map[string]any{"ok": true, "ts": ts, "duplicate": true})
		}
	}
	msg := map[string]any{"nick": st.nick, "text": text, "ts": ts}
	if id != "" {
		msg["id"] = id
	}
	if err := s.In(st.room).Emit("said", msg); err != nil {
		return err
	}
	return ev.Ack(map[string]any{"ok": true, "ts": ts})
}

// said records that signal says the line (key, id) and reports whether
// another signal said it already. The same signal handled again (after a
// worker crash) is not a duplicate: its effects were never committed.
func (c *chat) said(ctx context.Context, key, id, signal string) (bool, error) {
	k := c.prefix + "said:" + key + ":" + id
	rdb := c.w.Redis()
	set, err := rdb.SetNX(ctx, k, signal, SaidTTL).Result()
	if err != nil {
		return false, fmt.Errorf("chat: say: %w", err)
	}
	if set {
		return false, nil
	}
	prev, err := rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil // expired meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("chat: say: %w", err)
	}
	return prev != signal, nil
}

// gone cleans up after a socket that disconnected.
func (c *chat) gone(ctx context.Context, s *worker.Socket, _ bus.DisconnectReason) error {
	st, err := c.load(ctx, s.ID())
	if err != nil {
		return err
	}
	if st.room != "" {
		if err := c.leave(ctx, s, st.room, st.nick, notice("leave", st.nick+" left")); err != nil {
			return err
		}
	}
	if err := c.w.Redis().Del(ctx, c.sess(s.ID())).Err(); err != nil {
		return fmt.Errorf("chat: disconnect: %w", err)
	}
	return nil
}

// leave takes s (known there as nick) out of room and tells the others.
func (c *chat) leave(ctx context.Context, s *worker.Socket, room, nick string, n map[string]any) error {
	if err := c.w.Redis().HDel(ctx, c.members(room), s.ID()).Err(); err != nil {
		return fmt.Errorf("chat: leave: %w", err)
	}
	if err := c.release(ctx, room, nick, s.ID()); err != nil {
		return err
	}
	if err := s.Leave(room); err != nil && !errors.Is(err, worker.ErrBadRoom) {
		return err
	}
	if err := s.To(room).Emit("notice", n); err != nil {
		return err
	}
	users, err := c.users(ctx, room)
	if err != nil {
		return err
	}
	return s.To(room).Emit("users", users)
}

// claim reserves nick in room for session sid. A holder with the same key
// is an earlier session of the same page: it is ended and its place taken
// (replaced reports it). A holder with no state left is a leftover and is
// cleared.
func (c *chat) claim(ctx context.Context, sid, room, nick, key string) (ok, replaced bool, err error) {
	rdb := c.w.Redis()
	names, field := c.names(room), fold(nick)
	for range 3 {
		set, err := rdb.HSetNX(ctx, names, field, sid).Result()
		if err != nil {
			return false, false, fmt.Errorf("chat: claim %q: %w", nick, err)
		}
		if set {
			return true, replaced, nil
		}
		holder, err := rdb.HGet(ctx, names, field).Result()
		if errors.Is(err, redis.Nil) {
			continue // released meanwhile
		}
		if err != nil {
			return false, false, fmt.Errorf("chat: claim %q: %w", nick, err)
		}
		if holder == sid {
			return true, replaced, nil
		}
		hs, err := c.load(ctx, holder)
		if err != nil {
			return false, false, err
		}
		switch {
		case hs.nick == "":
			// A leftover of a session whose state is gone (a handler
			// interrupted between its steps): clear it. (A holder that is
			// joining has its nickname recorded before it claims.)
		case key != "" && hs.key == key:
			if err := c.replace(ctx, holder, hs); err != nil {
				return false, false, err
			}
			replaced = true
		default:
			return false, false, nil
		}
		if err := c.releaseField(ctx, room, field, holder); err != nil {
			return false, false, err
		}
	}
	return false, false, fmt.Errorf("chat: claim %q in %q: contended", nick, room)
}

// replace ends session old, an earlier session of the page now joining as
// the same nickname: it leaves the room silently (its disconnect then finds
// it in no room) and its session ends wherever it is still held.
func (c *chat) replace(ctx context.Context, old string, st state) error {
	rdb := c.w.Redis()
	if err := rdb.HDel(ctx, c.members(st.room), old).Err(); err != nil {
		return fmt.Errorf("chat: replace %s: %w", old, err)
	}
	if err := rdb.HDel(ctx, c.sess(old), "room").Err(); err != nil {
		return fmt.Errorf("chat: replace %s: %w", old, err)
	}
	if err := c.w.Disconnect(ctx, old); err != nil {
		return fmt.Errorf("chat: replace %s: %w", old, err)
	}
	return nil
}

// releaseScript deletes a hash field if it still holds the given value.
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0`)

// release frees nick in room if session sid holds it.
func (c *chat) release(ctx context.Context, room, nick, sid string) error {
	if nick == "" {
		return nil
	}
	return c.releaseField(ctx, room, fold(nick), sid)
}

// releaseField frees the folded nickname field in room if sid holds it.
func (c *chat) releaseField(ctx context.Context, room, field, sid string) error {
	if err := releaseScript.Run(ctx, c.w.Redis(), []string{c.names(room)}, field, sid).Err(); err != nil {
		return fmt.Errorf("chat: release %q in %q: %w", field, room, err)
	}
	return nil
}

func (c *chat) users(ctx context.Context, room string) ([]string, error) {
	m, err := c.w.Redis().HGetAll(ctx, c.members(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("chat: users of %q: %w", room, err)
	}
	users := make([]string, 0, len(m))
	for _, n := range m {
		users = append(users, n)
	}
	slices.SortFunc(users, func(a, b string) int {
		if c := strings.Compare(fold(a), fold(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return users, nil
}

func taken(nick, room string) map[string]string {
	return refusal("The nickname %s is taken in %s: choose another", nick, room)
}

// fold is the form in which nicknames are compared: Bob and bob are the
// same name.
func fold(nick string) string { return strings.ToLower(nick) }

// checkName returns why name (a nickname or room, already trimmed) is not
// acceptable, or "": it has 1 to max characters and no control or line
// separator characters.
func checkName(name string, max int, what string) string {
	if name == "" {
		return what + " cannot be blank"
	}
	if n := utf8.RuneCountInString(name); n > max {
		return fmt.Sprintf("%s has at most %d characters (this one has %d)", what, max, n)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return what + " cannot contain control characters or line breaks"
		}
	}
	return ""
}
