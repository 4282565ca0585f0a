-- leave.lua disconnects one namespace (Store.LeaveWrite). ARGV[4] sid,
-- [5] ns, [6] reason. KEYS: the session's, then the partition's shared
-- keys. Returns what leave_ns does.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
return leave_ns(ARGV[4], ARGV[5], ARGV[6], '', own_keys())
