-- reap_gateway.lua ends the streaming sessions of a dead gateway in one
-- partition (Store.ReapGateways), or of the caller's own previous run
-- (Store.EndOwnStreams). ARGV[4] node, [5] limit, [6] guard: the least ms
-- the caller's own liveness key must have left (-1: no guard; -2: the node
-- is the caller, starting: end its sessions whatever the liveness keys
-- say). KEYS[2] the node's liveness key (gwalive:<node>), KEYS[3] its
-- streams set in the partition (<P>{p}:gwss:<node>), KEYS[4] the caller's
-- liveness key.
-- Returns {-1, 0} if the node is alive, {-2, 0} if the caller's own key
-- has less than the guard left (a stall: nothing is ended), else {the
-- number of sessions ended, the number the set still holds}.
local node, guard = ARGV[4], tonumber(ARGV[6])
if guard ~= -2 then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end
  if guard >= 0 and redis.call('PTTL', KEYS[4]) < guard then return {-2, 0} end
end
local set = KEYS[3]
local sids = redis.call('SPOP', set, tonumber(ARGV[5]))
local n = 0
for _, sid in ipairs(sids) do
  if redis.call('HGET', k_s(sid), 'gw') == node then
    n = n + end_session(sid, 'gateway_lost', '')
  end
end
local left = redis.call('SCARD', set)
if left == 0 then redis.call('SREM', k_holders(), node) end
return {n, left}
