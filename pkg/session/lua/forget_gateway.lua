-- forget_gateway.lua forgets a dead gateway that holds no stream in any
-- partition any more (Store.ReapGateways, once reap_gateway.lua left each
-- of its streams sets empty): it leaves the gateways set and its route
-- stream is deleted (a gateway that comes back finds it gone, a gap its
-- reader reports). ARGV[4] node. KEYS[1] the node's liveness key
-- (gwalive:<node>), KEYS[2] the gateways set (gws), KEYS[3] its route
-- stream (gw:<node>): keys of the whole cluster, not of a partition.
-- Returns 0 if the node is alive again, else 1.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SREM', KEYS[2], ARGV[4])
redis.call('DEL', KEYS[3])
return 1
