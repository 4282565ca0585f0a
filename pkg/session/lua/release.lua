-- release.lua ends poll pollid of NODE, whose request is over without its
-- answer written (the write failed, its client left, or its poll script's
-- reply never came): it gives up the batch in flight that poll took, if it
-- still owns it, and wakes the poll parked since, which then delivers it
-- again (Store.Release). It also records the poll as released (rl), so
-- that a run of its script that Redis has yet to execute (sent before a
-- stall, or re-sent by the client library after a timeout) takes nothing,
-- and unparks it, so that no delivery is offered to it. With ARGV[6] "1"
-- (Store.ReleaseOffer) it gives up the batch only while it is still a
-- packet offered to the poll (off) that no run of the poll took since.
-- ARGV[4] sid, [5] pollid, [6] "1" or "0". KEYS: the session's.
-- Returns 1, or 0 when the poll no longer owns the batch.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
local sid = ARGV[4]
local s = own_keys().s
local me = NODE .. ' ' .. ARGV[5]
local f = redis.call('HMGET', s, 'io', 'pg', 'p', 'off')
if not f[3] then return 0 end -- the session is gone
redis.call('HSET', s, 'rl', me)
-- Still parked (its request ended without a wake): no delivery may be
-- offered to it any more.
if f[2] == me then redis.call('HDEL', s, 'pg', 'pq') end
if f[1] ~= me or (ARGV[6] == '1' and not f[4]) then return 0 end
redis.call('HDEL', s, 'io', 'itm', 'off')
local node, pid = poller(f[2])
if node then route_to(node, route_wake(sid, pid)) end
return 1
