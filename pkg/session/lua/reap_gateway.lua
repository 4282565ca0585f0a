-- reap_gateway.lua ends the streaming sessions of a dead gateway
-- (Store.ReapGateways), or of the caller's own previous run
-- (Store.EndOwnStreams). ARGV[4] node, [5] limit, [6] guard: the least ms
-- the caller's own liveness key must have left (-1: no guard; -2: the node
-- is the caller, starting: end its sessions whatever the liveness keys
-- say). KEYS[2] the node's liveness key (gwalive:<node>), KEYS[3] its
-- streams set (gwss:<node>), KEYS[4] the gateways set (gws), KEYS[5] its
-- route stream (gw:<node>), KEYS[6] the caller's liveness key.
-- Returns -1 if the node is alive, -2 if the caller's own key has less
-- than the guard left (a stall: nothing is ended), else the number of
-- sessions ended; a dead node is forgotten (and its route stream deleted:
-- a gateway that comes back finds it gone, a gap its reader reports) once
-- it holds none.
local node, guard = ARGV[4], tonumber(ARGV[6])
if guard ~= -2 then
  if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
  if guard >= 0 and redis.call('PTTL', KEYS[6]) < guard then return -2 end
end
local set = KEYS[3]
local sids = redis.call('SPOP', set, tonumber(ARGV[5]))
local n = 0
for _, sid in ipairs(sids) do
  if redis.call('HGET', k_s(sid), 'gw') == node then
    n = n + end_session(sid, 'gateway_lost', '')
  end
end
if guard ~= -2 and redis.call('SCARD', set) == 0 then
  redis.call('SREM', KEYS[4], node)
  redis.call('DEL', KEYS[5])
end
return n
