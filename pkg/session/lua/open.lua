-- open.lua attaches a streaming transport held by NODE (Store.OpenStream).
-- ARGV[4] sid, [5] transport, [6] "1" to refuse a session a stream
-- opened already (Config.ExclusiveStreams). KEYS: the session's, then the
-- partition's shared keys (this gateway's streams set among them; it
-- joins the partition's holders).
-- Returns nil (unknown, or ended now as its mailbox had overflowed), -1 (wrong class), -2 (held: ARGV[6]), or
-- {first, {queued packets}}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
if not node_routed() then return redis.error_reply(NOT_ROUTED) end
local sid, tr = ARGV[4], ARGV[5]
local k = own_keys()
local s = k.s
if redis.call('EXISTS', s) == 0 then return false end
local f = redis.call('HMGET', s, 'st', 'cls', 'p', 'gw', 'ovf')
if f[5] then -- its mailbox overflowed, and the commit's caller did not end it (lib.lua's overflow_later)
  end_session(sid, 'overflow', '', k)
  return false
end
if f[2] and f[2] ~= 'stream' then return -1 end
if ARGV[6] == '1' and f[1] ~= 'new' then return -2 end
local first = 0
if f[1] == 'new' then
  first = 1
  redis.call('HSET', s, 'st', 'open', 'tr', tr, 'cls', 'stream')
  redis.call('SADD', k.ns, '')
  redis.call('ZADD', MEMBERS, 0, member_entry(room_member('', ''), sid))
  xadd(k.sig, sid, 'connect', '', {transport = tr})
end
if f[4] and f[4] ~= NODE then
  drop_stream(f[4], sid)
  route_to(f[4], route_close(sid, 'replaced', ''))
end
-- tr is the transport holding the stream now (touch.lua takes htmlfile
-- POSTs by it): the 0.9 client falls back from a websocket that never
-- opened on its side to htmlfile with the same sid.
redis.call('HSET', s, 'gw', NODE, 'tr', tr)
redis.call('SADD', ROUTES[NODE].gwss, sid) -- NODE is routed (node_routed), so in ROUTES (routes_stale)
redis.call('SADD', HOLDERS, NODE)
redis.call('ZREM', KDL, sid)
for _, key in ipairs({s, k.ns, k.rooms, k.acks}) do redis.call('PERSIST', key) end
local q = redis.call('LRANGE', k.mb, 0, -1)
redis.call('DEL', k.mb)
redis.call('HDEL', s, 'mbb', 'mt', 'it', 'ic', 'ib', 'io', 'itm', 'off')
return {first, q}
