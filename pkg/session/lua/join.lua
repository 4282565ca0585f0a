-- join.lua connects a namespace (Store.JoinWrite). ARGV[4] sid, [5] ns,
-- [6] query, [7] "1" to queue the 1::<ns> echo (polling sessions;
-- streaming gateways write it themselves), [8] the most members of the
-- session's namespaces set (Config.MaxNamespaces + 1). KEYS: the
-- session's, then the partition's shared keys. Returns 1, 0 if the session
-- is gone, or 2 if the join would go beyond ARGV[8] (nothing changed).
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
local sid, ns = ARGV[4], ARGV[5]
local k = own_keys()
local f = redis.call('HMGET', k.s, 'p', 'cls', 'gw')
if not f[1] then return 0 end
if redis.call('SISMEMBER', k.ns, ns) == 0 and redis.call('SCARD', k.ns) >= tonumber(ARGV[8]) then return 2 end
if f[2] == 'stream' and f[3] then route_to(f[3], route_join(sid, ns, '')) end
if redis.call('SADD', k.ns, ns) == 1 then
  local e = member_entry(room_member(ns, ''), sid)
  redis.call('ZADD', MEMBERS, 0, e)
  if f[2] == 'poll' then redis.call('ZADD', PMEMBERS, 0, e) end
  xadd(k.sig, sid, 'connect', ns, {query = ARGV[6]})
end
if ARGV[7] == '1' then deliver(sid, {'1::' .. ns}, k) end
return 1
