-- reap_gateway.lua ends the streaming sessions of a gateway in one
-- partition (Store.ReapGateways, for a dead gateway, once its liveness key
-- was found gone; Store.EndOwnStreams, for the caller's own previous run).
-- ARGV[4] node, [5] limit. KEYS[2] the node's streams set in the
-- partition (<P>{p}:gwss:<node>), then the partition's shared keys.
-- Returns {the number of sessions ended, the number the set still holds}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
local node = ARGV[4]
local set = KEYS[2]
local sids = redis.call('SPOP', set, tonumber(ARGV[5]))
local n = 0
for _, sid in ipairs(sids) do
  local k = session_keys(sid)
  if redis.call('HGET', k.s, 'gw') == node then
    n = n + end_session(sid, 'gateway_lost', '', k)
  end
end
local left = redis.call('SCARD', set)
if left == 0 then redis.call('SREM', HOLDERS, node) end
return {n, left}
