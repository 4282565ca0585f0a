-- reap_deadlines.lua ends sessions whose deadline passed
-- (Store.ReapDeadlines). ARGV[4] limit. KEYS[1], then the partition's
-- shared keys.
-- Returns {examined, ended}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
local sids = redis.call('ZRANGEBYSCORE', KDL, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, sid in ipairs(sids) do
  n = n + end_session(sid, 'timeout', '', session_keys(sid))
  redis.call('ZREM', KDL, sid)
end
return {#sids, n}
