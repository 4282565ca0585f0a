-- end.lua ends a session (Store.End). ARGV[4] sid, [5] reason, [6] packet
-- for the holder to write before closing ("" none). KEYS: the session's, then the
-- partition's shared keys.
-- Returns 1 or 0.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
return end_session(ARGV[4], ARGV[5], ARGV[6], own_keys())
