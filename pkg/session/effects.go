package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/pkg/bus"
)

// ErrBadRoom is returned for a room name that is empty or contains '\n'.
var ErrBadRoom = errors.New("session: room names must be non-empty and contain no newline")

// Effect is one change a worker (or an emitter) makes: deliver, join,
// leave, broadcast, remember a server ack, end. Effects are applied by one
// Lua script per batch, together with the XACK of the signals that caused
// them, so a crash neither loses nor repeats them.
type Effect struct {
	op   byte
	args []string
}

// DeliverEffect queues packet for session sid (see Store.Deliver).
func DeliverEffect(sid, packet string) Effect { return Effect{'d', []string{sid, packet}} }

// JoinEffect puts sid in room of namespace ns.
func JoinEffect(sid, ns, room string) Effect { return Effect{'j', []string{sid, ns, room}} }

// LeaveEffect takes sid out of room of namespace ns.
func LeaveEffect(sid, ns, room string) Effect { return Effect{'l', []string{sid, ns, room}} }

// BroadcastEffect sends packet to every session in namespace ns (room "")
// or in room, except the session except ("" none).
func BroadcastEffect(ns, room, except, packet string) Effect {
	return Effect{'b', []string{ns, room, except, packet}}
}

// AckEffect remembers that the client's answer to server ack id of session
// sid goes to reply channel channel.
func AckEffect(sid string, id uint64, channel string) Effect {
	return Effect{'a', []string{sid, strconv.FormatUint(id, 10), channel}}
}

// EndEffect ends session sid with reason, after writing packet to it.
func EndEffect(sid string, reason bus.DisconnectReason, packet string) Effect {
	return Effect{'e', []string{sid, string(reason), packet}}
}

// LeaveNamespaceEffect disconnects sid from namespace ns (the server side of
// 0::/ns): packet is written to the client first.
func LeaveNamespaceEffect(sid, ns string, reason bus.DisconnectReason, packet string) Effect {
	return Effect{'n', []string{sid, ns, string(reason), packet}}
}

// ValidRoom checks a room name.
func ValidRoom(room string) error {
	if room == "" || strings.ContainsRune(room, '\n') {
		return ErrBadRoom
	}
	return nil
}

// Commit is one signal's acknowledgement with its effects. With Stream and
// ID empty, the effects apply unconditionally (an emitter's).
type Commit struct {
	Stream  string
	ID      string
	Effects []Effect
}

// commitScript applies commits in order. For a commit with an entry id, the
// effects apply only if XACK acknowledged the entry now (so a retried or
// duplicated commit applies nothing twice). From ARGV[4], per commit:
// stream, id, effect count, then per effect: op, arg count, args.
var commitScript = redis.NewScript(lib + `
local function join(sid, ns, room)
  local s = ks(sid)
  local f = redis.call('HMGET', s, 'cls', 'gw')
  if redis.call('EXISTS', s) == 0 then return end
  if redis.call('SISMEMBER', kns(sid), ns) == 0 then return end
  local r = ns .. ':' .. room
  redis.call('SADD', krooms(sid), r)
  redis.call('SADD', P .. 'room:' .. r, sid)
  if f[1] == 'poll' then redis.call('SADD', P .. 'roomp:' .. r, sid)
  elseif f[1] == 'stream' and f[2] then publish(f[2], 'J\n' .. sid .. '\n' .. ns .. '\n' .. room) end
end
local function leave(sid, ns, room)
  local s = ks(sid)
  local r = ns .. ':' .. room
  redis.call('SREM', krooms(sid), r)
  redis.call('SREM', P .. 'room:' .. r, sid)
  redis.call('SREM', P .. 'roomp:' .. r, sid)
  local gw = redis.call('HGET', s, 'gw')
  if gw then publish(gw, 'L\n' .. sid .. '\n' .. ns .. '\n' .. room) end
end
local function broadcast(ns, room, except, packet)
  pub(P .. 'bcast', 'B\n' .. ns .. '\n' .. room .. '\n' .. except .. '\n' .. NOW .. '\n' .. packet)
  local set
  if room == '' then set = P .. 'nsp:' .. ns else set = P .. 'roomp:' .. ns .. ':' .. room end
  for _, sid in ipairs(redis.call('SMEMBERS', set)) do
    if sid ~= except then deliver(sid, {packet}) end
  end
end
local function apply(op, a)
  if op == 'd' then deliver(a[1], {a[2]})
  elseif op == 'j' then join(a[1], a[2], a[3])
  elseif op == 'l' then leave(a[1], a[2], a[3])
  elseif op == 'b' then broadcast(a[1], a[2], a[3], a[4])
  elseif op == 'a' then
    if redis.call('EXISTS', ks(a[1])) == 1 then
      redis.call('HSET', kacks(a[1]), a[2], a[3])
      local ttl = redis.call('PTTL', ks(a[1]))
      if ttl > 0 then redis.call('PEXPIRE', kacks(a[1]), ttl) end
    end
  elseif op == 'e' then end_session(a[1], a[2], a[3])
  elseif op == 'n' then leave_ns(a[1], a[2], a[3], a[4])
  end
end
buffer()
local i, applied = 4, 0
while i <= #ARGV do
  local stream, id, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local ok = true
  if id ~= '' then ok = redis.call('XACK', stream, 'workers', id) == 1 end
  for _ = 1, n do
    local op, na = ARGV[i], tonumber(ARGV[i + 1])
    local a = {}
    for j = 1, na do a[j] = ARGV[i + 1 + j] end
    i = i + 2 + na
    if ok then apply(op, a) end
  end
  if ok then applied = applied + 1 end
end
flush()
return applied
`)

// Apply runs commits as one script and returns how many were applied (a
// commit whose entry was already acknowledged applies nothing).
func (s *Store) Apply(ctx context.Context, commits ...Commit) (int, error) {
	n := 3
	for _, c := range commits {
		n += 3
		for _, e := range c.Effects {
			n += 2 + len(e.args)
		}
	}
	args := append(make([]any, 0, n), s.args()...)
	for _, c := range commits {
		args = append(args, c.Stream, c.ID, len(c.Effects))
		for _, e := range c.Effects {
			args = append(args, string(e.op), len(e.args))
			for _, a := range e.args {
				args = append(args, a)
			}
		}
	}
	n, err := commitScript.Run(ctx, s.rdb, []string{s.cfg.Keys.Prefix() + "deadlines"}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("session: apply effects: %w", err)
	}
	return n, nil
}

// ackScript handles a client's answer to a server emit: the reply channel
// registered for the id (if any) gets "<sid>\n<id>\n<args>", and the ack
// signal is written. ARGV[4] sid, [5] id, [6] args, [7..] signal fields.
var ackScript = redis.NewScript(lib + `
local sid, id = ARGV[4], ARGV[5]
local p = redis.call('HGET', ks(sid), 'p')
if not p then return 0 end
local ch = redis.call('HGET', kacks(sid), id)
if ch then
  redis.call('HDEL', kacks(sid), id)
  redis.call('PUBLISH', ch, sid .. '\n' .. id .. '\n' .. ARGV[6])
end
local a = {'XADD', P .. 'sig:{' .. p .. '}', '*'}
for i = 7, #ARGV do a[#a + 1] = ARGV[i] end
redis.call(unpack(a))
return 1
`)

// AckWrite is a client's ack packet as a step of a committer batch.
func (s *Store) AckWrite(sig *bus.Signal) bus.Write {
	args := s.args(sig.SID, strconv.FormatUint(sig.MsgID, 10), sig.Args)
	args = append(args, sig.Values()...)
	keys := []string{s.key("s", sig.SID)}
	return func(pipe redis.Pipeliner) { ackScript.Eval(context.Background(), pipe, keys, args...) }
}
