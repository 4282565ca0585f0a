// Package chat is django-realtime's example chat, grown up for a cluster:
// nicknames, rooms, join and leave notices and a live user list. Its page is
// web/chat (serve it with the gateway's -static flag).
//
// It lives in namespace /chatroom, so that it runs beside the echo app in
// one worker. Events from the client:
//
//	nick [name]   -> ack {"nick": name} or {"error": …}
//	join [room]   -> leaves the current room, joins this one; ack {"room", "users"}
//	say  [text]   -> everyone in the room gets said {"nick","text","ts"}
//
// Events to the client: notice {"text"} (joins and leaves), users [names…]
// (the room's user list, after every change), said.
//
// State the cluster shares lives in Redis under <prefix>chat:…, written with
// idempotent commands (HSET, HDEL), since a handler may run again after a
// worker crash.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/realtime/realtime/pkg/bus"
	"github.com/realtime/realtime/pkg/worker"
)

// maxText bounds a chat line and maxNick a nickname, in characters.
const (
	maxText = 2000
	maxNick = 32
)

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

func (c *chat) nicks() string              { return c.prefix + "nicks" }        // sid -> nick
func (c *chat) rooms() string              { return c.prefix + "rooms" }        // sid -> room
func (c *chat) members(room string) string { return c.prefix + "room:" + room } // sid -> nick

func (c *chat) nick(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
	var name string
	if err := ev.Decode(&name); err != nil {
		return reply(ev, map[string]string{"error": "nick takes a string"})
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > maxNick {
		return reply(ev, map[string]string{"error": "a nickname has 1 to 32 characters"})
	}
	rdb := c.w.Redis()
	old, _ := rdb.HGet(ctx, c.nicks(), s.ID()).Result()
	if err := rdb.HSet(ctx, c.nicks(), s.ID(), name).Err(); err != nil {
		return err
	}
	room, _ := rdb.HGet(ctx, c.rooms(), s.ID()).Result()
	if room != "" && old != name {
		if err := rdb.HSet(ctx, c.members(room), s.ID(), name).Err(); err != nil {
			return err
		}
		if err := s.In(room).Emit("notice", map[string]string{"text": old + " is now " + name}); err != nil {
			return err
		}
		if err := c.sendUsers(ctx, s, room); err != nil {
			return err
		}
	}
	return reply(ev, map[string]string{"nick": name})
}

func (c *chat) join(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
	var room string
	if err := ev.Decode(&room); err != nil || strings.TrimSpace(room) == "" || strings.ContainsRune(room, '\n') {
		return reply(ev, map[string]string{"error": "join takes a room name"})
	}
	room = strings.TrimSpace(room)
	rdb := c.w.Redis()
	name, err := rdb.HGet(ctx, c.nicks(), s.ID()).Result()
	if err != nil || name == "" {
		return reply(ev, map[string]string{"error": "choose a nickname first"})
	}
	if old, _ := rdb.HGet(ctx, c.rooms(), s.ID()).Result(); old != "" && old != room {
		if err := c.leave(ctx, s, old, name+" left for "+room); err != nil {
			return err
		}
	}
	if err := rdb.HSet(ctx, c.rooms(), s.ID(), room).Err(); err != nil {
		return err
	}
	if err := rdb.HSet(ctx, c.members(room), s.ID(), name).Err(); err != nil {
		return err
	}
	if err := s.Join(room); err != nil {
		return err
	}
	if err := s.To(room).Emit("notice", map[string]string{"text": name + " joined"}); err != nil {
		return err
	}
	users, err := c.users(ctx, room)
	if err != nil {
		return err
	}
	if err := s.To(room).Emit("users", users); err != nil {
		return err
	}
	return reply(ev, map[string]any{"room": room, "users": users})
}

func (c *chat) say(ctx context.Context, s *worker.Socket, ev *worker.Event) error {
	var text string
	if err := ev.Decode(&text); err != nil || strings.TrimSpace(text) == "" {
		return reply(ev, map[string]string{"error": "say takes some text"})
	}
	if utf8.RuneCountInString(text) > maxText {
		return reply(ev, map[string]string{"error": "that is too long"})
	}
	rdb := c.w.Redis()
	room, _ := rdb.HGet(ctx, c.rooms(), s.ID()).Result()
	name, _ := rdb.HGet(ctx, c.nicks(), s.ID()).Result()
	if room == "" || name == "" {
		return reply(ev, map[string]string{"error": "join a room first"})
	}
	msg := map[string]any{"nick": name, "text": text, "ts": time.Now().UnixMilli()}
	if err := s.In(room).Emit("said", msg); err != nil {
		return err
	}
	return reply(ev, map[string]bool{"ok": true})
}

// gone cleans up after a socket that disconnected.
func (c *chat) gone(ctx context.Context, s *worker.Socket, _ bus.DisconnectReason) error {
	rdb := c.w.Redis()
	name, _ := rdb.HGet(ctx, c.nicks(), s.ID()).Result()
	if room, _ := rdb.HGet(ctx, c.rooms(), s.ID()).Result(); room != "" {
		if err := c.leave(ctx, s, room, name+" left"); err != nil {
			return err
		}
	}
	return rdb.HDel(ctx, c.nicks(), s.ID()).Err()
}

// leave takes s out of room and tells the others.
func (c *chat) leave(ctx context.Context, s *worker.Socket, room, notice string) error {
	rdb := c.w.Redis()
	if err := rdb.HDel(ctx, c.members(room), s.ID()).Err(); err != nil {
		return err
	}
	if err := rdb.HDel(ctx, c.rooms(), s.ID()).Err(); err != nil {
		return err
	}
	if err := s.Leave(room); err != nil && !errors.Is(err, worker.ErrBadRoom) {
		return err
	}
	if err := s.To(room).Emit("notice", map[string]string{"text": notice}); err != nil {
		return err
	}
	users, err := c.users(ctx, room)
	if err != nil {
		return err
	}
	return s.To(room).Emit("users", users)
}

func (c *chat) sendUsers(ctx context.Context, s *worker.Socket, room string) error {
	users, err := c.users(ctx, room)
	if err != nil {
		return err
	}
	return s.In(room).Emit("users", users)
}

func (c *chat) users(ctx context.Context, room string) ([]string, error) {
	m, err := c.w.Redis().HGetAll(ctx, c.members(room)).Result()
	if err != nil {
		return nil, err
	}
	users := make([]string, 0, len(m))
	for _, n := range m {
		users = append(users, n)
	}
	slices.Sort(users)
	return users, nil
}

func reply(ev *worker.Event, v any) error {
	if !ev.Acknowledgeable() {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return ev.Ack(json.RawMessage(b))
}
