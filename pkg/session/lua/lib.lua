-- lib.lua: the helpers the session scripts share. scripts.go runs each
-- script as: the header it renders from Go (ARGV conventions, the mailbox
-- defaults and the signal schema from the Go constants), the definitions
-- of this file the script uses, then the script's own file. Key names are
-- never spelled nor built here: every key a script touches comes as KEYS
-- (docs/redis.md, "Declared keys"). room_member(ns, room) is a macro
-- scripts.go expands to bus.RoomMember's format.
--
-- Each definition starts at the beginning of a line with "local" (the
-- comment lines just above belong to it); a script carries only those it
-- uses, directly or through others, so a helper costs nothing to the
-- scripts that do not call it.
--
-- Every script runs for one partition (bus.Keys.PartitionPrefix): KEYS[1]
-- is that partition's deadlines set, <P>{p}:deadlines, and every key it
-- declares is one of the partition's, so a script touches its partition's
-- hash slot only: effects on other partitions go through the outbox
-- (commit.lua, inbox.lua). A script on
-- one session (its sid in ARGV[4]) gets that session's keys as
-- KEYS[2..10], in the order of own_keys() below (Store.sessionKeys builds
-- them); its own keys follow from KEYS[11]. A script that sends route
-- messages or changes memberships also takes its partition's shared keys,
-- the last KEYS (partition_keys below). The helpers below that act on a
-- session take its sid and its keys: the table own_keys() returns for the
-- script's own session, or session_keys(sid) for a session named by data
-- (the sessions of a worker's effects, of a broadcast, of the reaper),
-- which the script declared too (declare_sessions).
--
-- Message formats written here (one helper each; pkg/bus owns and decodes
-- them, the contract tests in scripts_test.go check they agree): the route
-- messages and route stream entries (route_*, append_route and flush;
-- bus.Route, bus.EachRoute and bus.AppendRoute), the reply
-- message (reply_message, bus.Reply), the packed signal (xadd,
-- bus.Signal.Pack) and the membership entry (member_entry,
-- bus.MemberEntry).

local KDL = KEYS[1]

-- own_keys returns the keys of the script's own session, from KEYS; sig is
-- its partition's stream.
local function own_keys()
  return {s = KEYS[2], mb = KEYS[3], ns = KEYS[4], rooms = KEYS[5], acks = KEYS[6],
    kick = KEYS[7], cf = KEYS[8], sig = KEYS[9], post = KEYS[10], full = true}
end

-- The declared sessions (Store.evalAll): a script on sessions named by
-- data (a worker's effects, a broadcast's polling members, the reapers'
-- victims) gets them in ARGV[4], a line each (joined by '\n'): a kind
-- letter, then the sid. From KEYS[base + 1] on come their keys, in the
-- lines' order: for kind 'f' (full: a session the script may end, or whose
-- memberships it may change) 9 keys in own_keys() order, its hash,
-- mailbox, namespaces, rooms, acks, kick, confirmation, its partition's
-- stream and its POST record; for kind 'd' (delivery: a session the script
-- only delivers to or records an ack for) 3 keys, its hash, mailbox and
-- acks. declare_sessions reads them into SESS (sid -> its keys, as
-- own_keys() returns the script's own, full = true for kind 'f') and SIDS
-- (the ids, in order), and returns the index of their last key.
local SESS, SIDS = {}, {}
local function declare_sessions(base)
  local i = base
  for line in string.gmatch(ARGV[4], '[^\n]+') do
    local sid = string.sub(line, 2)
    SIDS[#SIDS + 1] = sid
    if string.sub(line, 1, 1) == 'f' then
      SESS[sid] = {s = KEYS[i + 1], mb = KEYS[i + 2], ns = KEYS[i + 3], rooms = KEYS[i + 4], acks = KEYS[i + 5],
        kick = KEYS[i + 6], cf = KEYS[i + 7], sig = KEYS[i + 8], post = KEYS[i + 9], full = true}
      i = i + 9
    else
      SESS[sid] = {s = KEYS[i + 1], mb = KEYS[i + 2], acks = KEYS[i + 3]}
      i = i + 3
    end
  end
  return i
end

-- session_keys returns the declared keys of session sid, a session named
-- by data. A script checks first that every session it will name is
-- declared, and fully where the effect needs it (effect_undeclared), so
-- the error is a bug's.
local function session_keys(sid)
  local k = SESS[sid]
  if not k then error('session ' .. sid .. ' is not declared') end
  return k
end

-- member_entry is session sid's entry in the partition's memberships
-- (MEMBERS, PMEMBERS: bus.MemberEntry) for rm, a room_member (the
-- namespace itself: room_member(ns, '')); entries of one rm are the range
-- that starts with member_entry(rm, '').
local function member_entry(rm, sid) return #rm .. ':' .. rm .. sid end

-- xadd appends a signal of session sid to stream, packed as
-- bus.Signal.Pack does; extra holds query, transport or reason.
local function xadd(stream, sid, kind, ns, extra)
  extra = extra or {}
  local f = {SIGNAL_VERSION, kind, sid, ns, NODE, NOW, '', '', '', '', '', extra.query or '', extra.transport or '', extra.reason or '', ''}
  local parts = {}
  for i, v in ipairs(f) do parts[i] = #v .. ':' .. v end
  return redis.call('XADD', stream, '*', SIGNAL_FIELD, table.concat(parts))
end

-- Route messages (bus.Route): one helper per kind.
local function route_deliver(sid, packet) return 'D\n' .. sid .. '\n' .. NOW .. '\n' .. packet end
local function route_wake(sid, pid) return 'W\n' .. sid .. '\n' .. pid end
local function route_offer(sid, pid, packet) return 'O\n' .. sid .. '\n' .. pid .. '\n' .. NOW .. '\n' .. packet end
local function route_kick(sid, pid) return 'K\n' .. sid .. '\n' .. pid end
local function route_close(sid, reason, packet) return 'C\n' .. sid .. '\n' .. reason .. '\n' .. packet end
local function route_join(sid, ns, room) return 'J\n' .. sid .. '\n' .. ns .. '\n' .. room end
local function route_leave(sid, ns, room) return 'L\n' .. sid .. '\n' .. ns .. '\n' .. room end
local function route_broadcast(ns, room, except, packet)
  return 'B\n' .. ns .. '\n' .. room .. '\n' .. except .. '\n' .. NOW .. '\n' .. packet
end
local function route_batch(msgs)
  local parts = {'M\n'}
  for _, m in ipairs(msgs) do parts[#parts + 1] = #m .. '\n' .. m end
  return table.concat(parts)
end

-- reply_message is a client's answer to a server emit (bus.Reply).
local function reply_message(sid, id, args) return sid .. '\n' .. id .. '\n' .. args end

-- Route messages go to gateways' route streams (bus.AppendRoute is the Go
-- twin: id 0-*, so ids are dense; NOMKSTREAM, so only the gateway creates
-- its stream; capped at about ROUTE_MAXLEN entries). They are appended at
-- once, or, once a script called buffer(), collected and appended by
-- flush() at its end: one entry per stream, holding that stream's messages
-- in order (a batch, route_batch, when there are several). Order matters
-- within a stream only: each gateway reads its own.
local BUF = nil
local function buffer() BUF = {keys = {}, msgs = {}} end
local function add_route_entry(key, msg)
  redis.call('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', ROUTE_MAXLEN, '0-*', ROUTE_FIELD, msg)
end
local function append_route(key, msg)
  if not BUF then add_route_entry(key, msg) return end
  local m = BUF.msgs[key]
  if not m then
    m = {}
    BUF.msgs[key] = m
    BUF.keys[#BUF.keys + 1] = key
  end
  m[#m + 1] = msg
end
local function flush()
  local buf = BUF or {keys = {}, msgs = {}}
  BUF = nil
  for _, key in ipairs(buf.keys) do
    local msgs = buf.msgs[key]
    if #msgs == 1 then add_route_entry(key, msgs[1]) else add_route_entry(key, route_batch(msgs)) end
  end
end
-- The partition's shared keys (Store.run): the caller's route table,
-- GATEWAYS (ARGV[1]), names the gateways it knows of (node ids joined by
-- '\n'); for the script's partition it declares, as its last 5 + 2n KEYS,
-- the partition's set of the gateways holding streams (HOLDERS), its set of
-- the gateways its sessions may name (ROUTING, bus.Keys.RouteGateways), its
-- memberships and its polling ones (MEMBERS, PMEMBERS: sorted sets of
-- member_entry), its rooms by member count (ROOMIDX), then for each
-- gateway of the table, in order, its route stream and its streams set of
-- the partition. partition_keys reads such a block from KEYS[base + 1] on
-- and returns HOLDERS, ROUTING, MEMBERS, PMEMBERS, ROOMIDX and ROUTES
-- (node -> {gw = route stream, gwss = streams set}).
local GW = {}
for node in string.gmatch(GATEWAYS, '[^\n]+') do GW[#GW + 1] = node end
local function partition_keys(base)
  local routes = {}
  for i, node in ipairs(GW) do routes[node] = {gw = KEYS[base + 4 + 2 * i], gwss = KEYS[base + 5 + 2 * i]} end
  return KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], routes
end
local HOLDERS, ROUTING, MEMBERS, PMEMBERS, ROOMIDX, ROUTES = partition_keys(#KEYS - 5 - 2 * #GW)

-- routes_stale reports whether the partition's sessions may name a
-- gateway the caller declared no route keys for (a member of ROUTING not
-- in ROUTES: its table is older than that gateway). A script that routes
-- checks it before it writes anything, and then returns
-- redis.error_reply(ROUTES_STALE): its caller refreshes its table and runs
-- it again. So a gateway a script does not know is one no session names
-- any more (it was forgotten), and its messages are dropped, as XADD
-- NOMKSTREAM drops those to its deleted route streams. It also records
-- in ROUTED whether NODE is a member (node_routed).
local ROUTED = false
local function routes_stale()
  local stale = false
  ROUTED = false
  for _, node in ipairs(redis.call('SMEMBERS', ROUTING)) do
    if not ROUTES[node] then stale = true end
    if node == NODE then ROUTED = true end
  end
  return stale
end

-- node_routed reports whether NODE, the gateway running the script, is in
-- the partition's routing set, as routes_stale (called first) read it. A
-- script that makes a session name NODE
-- (open.lua: the holder of its stream; poll.lua: of its parked poll)
-- checks it before it writes anything, and otherwise returns
-- redis.error_reply(NOT_ROUTED): its caller joins the routing sets and
-- runs it again. So every gateway a session names is in the routing set
-- (or was forgotten since, and holds nothing), even after Redis lost the
-- set (restarted empty) while the gateway lived.
local function node_routed() return ROUTED end

-- route_to sends a route message to gateway node.
local function route_to(node, msg)
  local r = ROUTES[node]
  if r then append_route(r.gw, msg) end
end

-- drop_stream records that gateway node no longer holds the stream of sid,
-- a session of the script's partition: its streams set of the partition,
-- and the partition's set of the gateways holding any (HOLDERS, for
-- broadcasts; open.lua adds to both). A forgotten gateway's streams sets
-- are empty (the reaper forgets only such a gateway).
local function drop_stream(node, sid)
  local r = ROUTES[node]
  if r then redis.call('SREM', r.gwss, sid) end
  if not r or redis.call('EXISTS', r.gwss) == 0 then redis.call('SREM', HOLDERS, node) end
end

local function poller(pg)
  if not pg then return nil, nil end
  return string.match(pg, '^(%S+) (%S+)$')
end

-- leave_room_member takes session sid out of room rm (a room_member) in
-- the partition's memberships and room index (the session's own rooms set
-- is its caller's).
local function leave_room_member(sid, rm)
  local e = member_entry(rm, sid)
  if redis.call('ZREM', MEMBERS, e) == 1 and tonumber(redis.call('ZINCRBY', ROOMIDX, -1, rm)) <= 0 then
    redis.call('ZREM', ROOMIDX, rm)
  end
  redis.call('ZREM', PMEMBERS, e)
end

-- end_session ends a session (keys k: own_keys() or session_keys(sid))
-- exactly once: one disconnect signal per connected namespace (the default
-- one last), every index cleaned, the holder of its stream or parked poll
-- told. Returns 1, or 0 if it was gone.
local function end_session(sid, reason, packet, k)
  local f = redis.call('HMGET', k.s, 'p', 'gw', 'pg', 'cls')
  if not f[1] then return 0 end
  local gw, pg = f[2], f[3]
  if packet and packet ~= '' and f[4] ~= 'stream' then
    -- A polling client may be between polls: its next poll gets the last
    -- packet (e.g. 0::, so it knows it was booted) instead of an error.
    redis.call('SET', k.kick, packet, 'PX', 60000)
  end
  local nss = redis.call('SMEMBERS', k.ns)
  table.sort(nss, function(a, b) return a > b end)
  for _, ns in ipairs(nss) do
    xadd(k.sig, sid, 'disconnect', ns, {reason = reason})
    local e = member_entry(room_member(ns, ''), sid)
    redis.call('ZREM', MEMBERS, e)
    redis.call('ZREM', PMEMBERS, e)
  end
  for _, rm in ipairs(redis.call('SMEMBERS', k.rooms)) do leave_room_member(sid, rm) end
  redis.call('ZREM', KDL, sid)
  local msg = route_close(sid, reason, packet or '')
  if gw then
    drop_stream(gw, sid)
    route_to(gw, msg)
  end
  local pnode = poller(pg)
  if pnode and pnode ~= gw then route_to(pnode, msg) end
  redis.call('DEL', k.s, k.mb, k.ns, k.rooms, k.acks, k.cf, k.post)
  return 1
end

-- OVERFLOWED lists the sessions declared for delivery only whose mailbox
-- overflowed during the script (overflow_later), which it returns so that
-- its caller ends them (Store.endOverflowed).
local OVERFLOWED = {}

-- overflow_later marks session sid (keys k, declared for delivery only:
-- the script cannot end it, as its other keys are not declared) as
-- overflowed: the field ovf of its hash, which drops what is delivered to
-- it from now on (deliver) and keeps its deadline from moving (refresh);
-- lists it in OVERFLOWED, for the caller to end it at once; and sets its
-- deadline in the past, so that the partition's reaper ends it with reason
-- overflow (reap_deadlines.lua) if the caller does not.
local function overflow_later(sid, k)
  redis.call('HSET', k.s, 'ovf', 1)
  redis.call('ZADD', KDL, 0, sid)
  OVERFLOWED[#OVERFLOWED + 1] = sid
end

-- deliver queues packets for a session (keys k): routed to the gateway
-- holding its stream, else appended to its mailbox, waking a parked poll.
-- One packet for an empty mailbox whose poll is parked for packets (pq,
-- set by poll.lua's last park, names the parked poll pg) is taken for that
-- poll at once, as the poll's own run would take it (it, ic, ib, io, itm),
-- and offered to it (route_offer; off marks the batch as offered): its
-- gateway answers without running the poll again. Returns 1, 0 when there
-- is no such session, -1 when the mailbox overflowed (the session is then
-- ended with reason "overflow"): its bytes would pass mxb while its oldest
-- packet has waited more than mxw ms (the client does not drain it), or
-- pass MB_HARD times mxb. A session declared for delivery only is marked
-- then (overflow_later), and so is ended by the script's caller. A session
-- marked so drops the packets (-1), and is ended if its keys are all
-- declared (k.full).
local function deliver(sid, packets, k)
  local s = k.s
  local f = redis.call('HMGET', s, 'cls', 'gw', 'pg', 'p', 'mbb', 'mt', 'mxb', 'mxw', 'pq', 'pt', 'ovf')
  if not f[4] then return 0 end -- every session has its partition
  if f[11] then -- marked by overflow_later: ended here if it can be
    if k.full then end_session(sid, 'overflow', '', k) end
    return -1
  end
  if f[1] == 'stream' and f[2] then
    for _, pk in ipairs(packets) do route_to(f[2], route_deliver(sid, pk)) end
    return 1
  end
  local add = 0
  for _, pk in ipairs(packets) do add = add + #pk end
  local bytes = (tonumber(f[5]) or 0) + add
  local bound = tonumber(f[7]) or MB_DEFAULT
  if bytes > bound then
    local waited = 0
    if f[6] then waited = tonumber(NOW) - tonumber(f[6]) end
    if bytes > MB_HARD * bound or waited > (tonumber(f[8]) or MB_WAIT_DEFAULT) then
      if k.full then end_session(sid, 'overflow', '', k) else overflow_later(sid, k) end
      return -1
    end
  end
  local node, pid = poller(f[3])
  local offer = node and f[9] == f[3] and #packets == 1 and bytes == add
  if offer then
    redis.call('HDEL', s, 'pg', 'pq', 'mt')
    redis.call('HSET', s, 'mbb', bytes, 'it', f[10], 'ic', 1, 'ib', add, 'io', f[3], 'itm', NOW, 'off', 1)
  elseif f[6] then redis.call('HSET', s, 'mbb', bytes)
  else redis.call('HSET', s, 'mt', NOW, 'mbb', bytes) end
  redis.call('RPUSH', k.mb, unpack(packets))
  local ttl = redis.call('PTTL', s)
  if ttl > 0 then redis.call('PEXPIRE', k.mb, ttl) end
  if offer then route_to(node, route_offer(sid, pid, packets[1]))
  elseif node then route_to(node, route_wake(sid, pid)) end
  return 1
end

-- leave_ns disconnects one namespace of a session (keys k): packet (if
-- any) is delivered first, the session leaves the namespace's rooms, the
-- gateway holding its stream is told, and the disconnect signal is
-- written. Returns 1, or 0 when the session or the namespace membership
-- was gone.
local function leave_ns(sid, ns, reason, packet, k)
  local f = redis.call('HMGET', k.s, 'p', 'gw')
  if not f[1] then return 0 end
  if packet ~= '' then deliver(sid, {packet}, k) end
  if redis.call('SREM', k.ns, ns) == 0 then return 0 end
  local e = member_entry(room_member(ns, ''), sid)
  redis.call('ZREM', MEMBERS, e)
  redis.call('ZREM', PMEMBERS, e)
  local prefix = room_member(ns, '')
  for _, rm in ipairs(redis.call('SMEMBERS', k.rooms)) do
    if string.sub(rm, 1, #prefix) == prefix then
      leave_room_member(sid, rm)
      redis.call('SREM', k.rooms, rm)
    end
  end
  if f[2] then route_to(f[2], route_leave(sid, ns, '')) end
  xadd(k.sig, sid, 'disconnect', ns, {reason = reason})
  return 1
end

-- trim_batch drops the batch in flight from the head of the script's own
-- session's mailbox (its answer reached the client) and forgets it.
local function trim_batch(own)
  local s = own.s
  local f = redis.call('HMGET', s, 'ic', 'ib', 'mbb')
  local ic = tonumber(f[1]) or 0
  if ic > 0 then redis.call('LTRIM', own.mb, ic, -1) end
  local left = (tonumber(f[3]) or 0) - (tonumber(f[2]) or 0)
  if left < 0 then left = 0 end
  redis.call('HSET', s, 'ic', 0, 'mbb', left)
  redis.call('HDEL', s, 'io', 'itm', 'ib', 'off')
end

local function expire_all(own, ttl)
  for _, key in ipairs({own.s, own.mb, own.ns, own.rooms, own.acks}) do
    redis.call('PEXPIRE', key, ttl)
  end
end

-- refresh pushes the script's own polling session's deadline and its keys'
-- TTL forward unless the deadline written last (dl, the session hash
-- field) is less than slack ms short of the new one: a client polling many
-- times a second pays for it about once per slack, and its deadline is
-- never more than slack short.
local function refresh(sid, own, dl, deadline, ttl, slack)
  if dl and tonumber(deadline) - tonumber(dl) < tonumber(slack) then return end
  if redis.call('HEXISTS', own.s, 'ovf') == 1 then return end -- overflow_later: its reaper ends it
  redis.call('ZADD', KDL, deadline, sid)
  expire_all(own, ttl)
  redis.call('HSET', own.s, 'dl', deadline)
end

-- open_polling opens a session no transport has opened yet for polling
-- transport tr, as its first GET does (poll.lua), or a POST before that
-- GET (touch.lua; the reference's handleClient connects a session on any
-- request of a handshaken id): the default namespace is connected (members,
-- pmembers: the partition's memberships), the connect signal is written,
-- and 1:: waits first in its mailbox.
local function open_polling(sid, own, tr, members, pmembers)
  redis.call('HSET', own.s, 'st', 'open', 'tr', tr, 'cls', 'poll')
  redis.call('SADD', own.ns, '')
  local e = member_entry(room_member('', ''), sid)
  redis.call('ZADD', members, 0, e)
  redis.call('ZADD', pmembers, 0, e)
  xadd(own.sig, sid, 'connect', '', {transport = tr})
  redis.call('LPUSH', own.mb, '1::')
  redis.call('HINCRBY', own.s, 'mbb', 3)
end

-- join_room puts a session (keys k) of the script's partition in a room of
-- a namespace it is connected to, telling the gateway holding its stream.
local function join_room(sid, ns, room, k)
  local f = redis.call('HMGET', k.s, 'cls', 'gw', 'p')
  if not f[3] then return end
  if redis.call('SISMEMBER', k.ns, ns) == 0 then return end
  local rm = room_member(ns, room)
  redis.call('SADD', k.rooms, rm)
  local e = member_entry(rm, sid)
  if redis.call('ZADD', MEMBERS, 0, e) == 1 then redis.call('ZINCRBY', ROOMIDX, 1, rm) end
  if f[1] == 'poll' then redis.call('ZADD', PMEMBERS, 0, e)
  elseif f[1] == 'stream' and f[2] then route_to(f[2], route_join(sid, ns, room)) end
end

local function leave_room(sid, ns, room, k)
  local rm = room_member(ns, room)
  redis.call('SREM', k.rooms, rm)
  leave_room_member(sid, rm)
  local gw = redis.call('HGET', k.s, 'gw')
  if gw then route_to(gw, route_leave(sid, ns, room)) end
end

-- broadcast_here carries a broadcast to the script's partition: each
-- gateway holding streams of the partition is told on its route stream of
-- the partition (in order with the other routes of those sessions; it
-- writes to the streams of the partition it holds), and the partition's
-- polling members get the packet in their mailboxes: those the caller
-- declared, having read the room's members just before (Store.Apply). A
-- member that joined since, by another commit, is skipped: its join and
-- this broadcast were concurrent, and the broadcast is taken as the
-- earlier. (A member an earlier effect of this script made is that
-- effect's session, declared.)
local function broadcast_here(ns, room, except, packet)
  local msg = route_broadcast(ns, room, except, packet)
  for _, node in ipairs(redis.call('SMEMBERS', HOLDERS)) do route_to(node, msg) end
  local prefix = member_entry(room_member(ns, room), '')
  for _, e in ipairs(redis.call('ZRANGEBYLEX', PMEMBERS, '[' .. prefix, '[' .. prefix .. '\255')) do
    local sid = string.sub(e, #prefix + 1)
    local k = SESS[sid]
    if sid ~= except and k then deliver(sid, {packet}, k) end
  end
end

-- effect_undeclared reports whether effect op (arguments a) names a
-- session the caller did not declare, or declared for delivery only where
-- the effect may end it or change its memberships (a broadcast names
-- none: see broadcast_here). A script checks every effect before it writes
-- anything, and then returns redis.error_reply(SESSIONS_STALE).
local function effect_undeclared(op, a)
  if op == 'b' then return false end
  local k = SESS[a[1]]
  return not k or (op ~= 'd' and op ~= 'a' and not k.full)
end

-- apply_effect applies one effect (session.Effect: op and its arguments)
-- in the script's partition: its session is one of the partition's, and a
-- broadcast reaches the partition's members.
local function apply_effect(op, a)
  if op == 'd' then deliver(a[1], {a[2]}, session_keys(a[1]))
  elseif op == 'j' then join_room(a[1], a[2], a[3], session_keys(a[1]))
  elseif op == 'l' then leave_room(a[1], a[2], a[3], session_keys(a[1]))
  elseif op == 'b' then broadcast_here(a[1], a[2], a[3], a[4])
  elseif op == 'a' then
    local k = session_keys(a[1])
    if redis.call('EXISTS', k.s) == 1 then
      redis.call('HSET', k.acks, a[2], a[3])
      local ttl = redis.call('PTTL', k.s)
      if ttl > 0 then redis.call('PEXPIRE', k.acks, ttl) end
    end
  elseif op == 'e' then end_session(a[1], a[2], a[3], session_keys(a[1]))
  elseif op == 'n' then leave_ns(a[1], a[2], a[3], a[4], session_keys(a[1]))
  end
end

-- each_commit walks the commits in ARGV from index i on, as
-- Store.commitArgs writes them (per commit: stream, consumer group, id,
-- effect count, then per effect: op, partition, arg count, args). A commit
-- with an entry id applies only if XACK acknowledged the entry now (so a
-- retried or duplicated commit applies nothing twice); for each effect of
-- a commit that applies, apply(op, partition, args) is called, in order.
-- Returns the number of commits applied. With dry, nothing is
-- acknowledged and apply is called for every effect (a check before the
-- writes), and it returns -1 if a commit with an entry id names a stream
-- the script did not declare (streams: the declared signal streams, a
-- set).
local function each_commit(i, apply, dry, streams)
  local applied = 0
  while i <= #ARGV do
    local stream, group, id, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    i = i + 4
    local ok = true
    if id ~= '' and dry and not streams[stream] then return -1 end
    if id ~= '' and not dry then ok = redis.call('XACK', stream, group, id) == 1 end
    for _ = 1, n do
      local op, part, na = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
      local a = {}
      for j = 1, na do a[j] = ARGV[i + 2 + j] end
      i = i + 3 + na
      if ok then apply(op, part, a) end
    end
    if ok then applied = applied + 1 end
  end
  return applied
end

-- Outbox entries (commit.lua writes them, inbox.lua applies them; Go reads
-- them in session/outbox.go): the effects for one partition as a list of
-- fields, op, argument count, arguments, ..., each written
-- <decimal byte length>:<bytes> (as the packed signal's fields are).
local function pack_fields(fields)
  local parts = {}
  for i, v in ipairs(fields) do parts[i] = #v .. ':' .. v end
  return table.concat(parts)
end
local function unpack_fields(s)
  local out, i = {}, 1
  while i <= #s do
    local colon = string.find(s, ':', i, true)
    local n = tonumber(string.sub(s, i, colon - 1))
    out[#out + 1] = string.sub(s, colon + 1, colon + n)
    i = colon + n + 1
  end
  return out
end
