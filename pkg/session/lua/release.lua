-- release.lua gives up the batch in flight taken by poll pollid of NODE
-- (its answer could not be written), if it still owns it, and wakes the
-- poll parked since, which then delivers it again (Store.Release).
-- ARGV[4] sid, [5] pollid. KEYS: the session's.
-- Returns 1, or 0 when the poll no longer owns the batch.
local sid = ARGV[4]
local s = own_keys().s
local f = redis.call('HMGET', s, 'io', 'pg')
if f[1] ~= NODE .. ' ' .. ARGV[5] then return 0 end
redis.call('HDEL', s, 'io', 'itm')
local node, pid = poller(f[2])
if node then publish(node, route_wake(sid, pid)) end
return 1
