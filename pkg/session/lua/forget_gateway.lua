-- forget_gateway.lua forgets a dead gateway that holds no stream in any
-- partition any more (Store.ReapGateways, once reap_gateway.lua left each
-- of its streams sets empty): it leaves the gateways set and its route
-- streams are deleted (a gateway that comes back finds them gone, a gap
-- its readers report). ARGV[4] node. KEYS[1] the node's liveness key
-- (gwalive:<node>), KEYS[2] the gateways set (gws), KEYS[3..] its route
-- streams, one per partition (<P>{p}:gw:<node>).
-- Returns 0 if the node is alive again, else 1.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SREM', KEYS[2], ARGV[4])
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
