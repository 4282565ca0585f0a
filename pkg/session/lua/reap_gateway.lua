-- reap_gateway.lua ends the streaming sessions of a gateway in one
-- partition (Store.ReapGateways, for a dead gateway, once its liveness key
-- was found gone; Store.EndOwnStreams, for the caller's own previous run):
-- the declared sessions (ARGV[4], read by the caller from the node's
-- streams set), each one the set still holds and the node still holds
-- the stream of. ARGV[5] node. KEYS[2] the node's streams set in the
-- partition (<P>{p}:gwss:<node>), then the declared sessions
-- (declare_sessions), then the partition's shared keys.
-- Returns {the number of sessions ended, the number the set still holds}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
declare_sessions(2)
local node = ARGV[5]
local set = KEYS[2]
local n = 0
for _, sid in ipairs(SIDS) do
  local k = session_keys(sid)
  if redis.call('SREM', set, sid) == 1 and redis.call('HGET', k.s, 'gw') == node then
    n = n + end_session(sid, 'gateway_lost', '', k)
  end
end
local left = redis.call('SCARD', set)
if left == 0 then redis.call('SREM', HOLDERS, node) end
return {n, left}
