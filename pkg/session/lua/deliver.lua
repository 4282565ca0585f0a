-- deliver.lua queues packets for a session (Store.Deliver). ARGV[4] sid,
-- [5..] packets. KEYS: the session's, then the partition's shared
-- keys. Returns what deliver does.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
local packets = {}
for i = 5, #ARGV do packets[#packets + 1] = ARGV[i] end
return deliver(ARGV[4], packets, own_keys())
