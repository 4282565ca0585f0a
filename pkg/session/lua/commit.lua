-- commit.lua applies commits in order (Store.Apply). For a commit with an
-- entry id, the effects apply only if XACK acknowledged the entry now (so
-- a retried or duplicated commit applies nothing twice). ARGV[4] the
-- number of partitions n, ARGV[5..4+n] their key prefixes (PP of each);
-- then per commit: stream, consumer group, id, effect count, then per
-- effect: op, partition (the number of its session's, "" for a
-- broadcast), arg count, args.
-- KEYS[1] only: the sessions, rooms and streams come with the effects.
-- Returns the number of commits applied.
local PREFIXES = {}
local np = tonumber(ARGV[4])
for j = 1, np do PREFIXES[j] = ARGV[4 + j] end
local function join(sid, ns, room)
  local s = k_s(sid)
  local f = redis.call('HMGET', s, 'cls', 'gw')
  if redis.call('EXISTS', s) == 0 then return end
  if redis.call('SISMEMBER', k_ns(sid), ns) == 0 then return end
  local r = room_member(ns, room)
  redis.call('SADD', k_rooms(sid), r)
  redis.call('SADD', k_room(r), sid)
  if f[1] == 'poll' then redis.call('SADD', k_roomp(r), sid)
  elseif f[1] == 'stream' and f[2] then route_to(f[2], route_join(sid, ns, room)) end
end
local function leave(sid, ns, room)
  local r = room_member(ns, room)
  redis.call('SREM', k_rooms(sid), r)
  redis.call('SREM', k_room(r), sid)
  redis.call('SREM', k_roomp(r), sid)
  local gw = redis.call('HGET', k_s(sid), 'gw')
  if gw then route_to(gw, route_leave(sid, ns, room)) end
end
-- broadcast tells every gateway (which write to the streams they hold)
-- and queues packet for the polling members of every partition.
local function broadcast(ns, room, except, packet, prefixes)
  local msg = route_broadcast(ns, room, except, packet)
  for _, node in ipairs(redis.call('SMEMBERS', k_gws())) do route_to(node, msg) end
  for _, pp in ipairs(prefixes) do
    PP = pp
    local set
    if room == '' then set = k_nsp(ns) else set = k_roomp(room_member(ns, room)) end
    for _, sid in ipairs(redis.call('SMEMBERS', set)) do
      if sid ~= except then deliver(sid, {packet}) end
    end
  end
end
local function apply(op, a)
  if op == 'd' then deliver(a[1], {a[2]})
  elseif op == 'j' then join(a[1], a[2], a[3])
  elseif op == 'l' then leave(a[1], a[2], a[3])
  elseif op == 'b' then broadcast(a[1], a[2], a[3], a[4], PREFIXES)
  elseif op == 'a' then
    local s, acks = k_s(a[1]), k_acks(a[1])
    if redis.call('EXISTS', s) == 1 then
      redis.call('HSET', acks, a[2], a[3])
      local ttl = redis.call('PTTL', s)
      if ttl > 0 then redis.call('PEXPIRE', acks, ttl) end
    end
  elseif op == 'e' then end_session(a[1], a[2], a[3])
  elseif op == 'n' then leave_ns(a[1], a[2], a[3], a[4])
  end
end
buffer()
local i, applied = 5 + np, 0
while i <= #ARGV do
  local stream, group, id, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local ok = true
  if id ~= '' then ok = redis.call('XACK', stream, group, id) == 1 end
  for _ = 1, n do
    local op, part, na = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local a = {}
    for j = 1, na do a[j] = ARGV[i + 2 + j] end
    i = i + 3 + na
    if ok then
      if part ~= '' then PP = PREFIXES[tonumber(part) + 1] end
      apply(op, a)
    end
  end
  if ok then applied = applied + 1 end
end
flush()
return applied
