-- reap_gateway.lua ends the streaming sessions of a dead gateway
-- (Store.ReapGateways). ARGV[4] node, [5] limit. KEYS[2] the node's
-- liveness key (gwalive:<node>), KEYS[3] its streams set (gwss:<node>),
-- KEYS[4] the gateways set (gws).
-- Returns -1 if the node is alive, else the number of sessions ended; the
-- node is forgotten once it holds none.
local node = ARGV[4]
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local set = KEYS[3]
local sids = redis.call('SPOP', set, tonumber(ARGV[5]))
local n = 0
for _, sid in ipairs(sids) do
  if redis.call('HGET', k_s(sid), 'gw') == node then
    n = n + end_session(sid, 'gateway_lost', '')
  end
end
if redis.call('SCARD', set) == 0 then redis.call('SREM', KEYS[4], node) end
return n
