-- leave.lua disconnects one namespace (Store.LeaveWrite). ARGV[4] sid,
-- [5] ns, [6] reason. KEYS: the session's, then KEYS[10] and KEYS[11] the
-- partition's namespace sets (<P>{p}:nsm:<ns>, nsp:<ns>). Returns what
-- leave_ns does.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
return leave_ns(ARGV[4], ARGV[5], ARGV[6], '', own_keys(), KEYS[10], KEYS[11])
