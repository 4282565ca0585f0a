-- reap_deadlines.lua ends sessions whose deadline passed
-- (Store.ReapDeadlines): the declared sessions (ARGV[4], read by the
-- caller from the deadlines set), each one whose deadline is still past,
-- with reason timeout, or overflow for a session marked so (lib.lua's
-- overflow_later).
-- KEYS[1], the declared sessions (declare_sessions), then the partition's
-- shared keys. Returns {examined, ended, of those ended for overflow}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
declare_sessions(1)
local n, overflowed = 0, 0
for _, sid in ipairs(SIDS) do
  local dl = redis.call('ZSCORE', KDL, sid)
  if dl and tonumber(dl) <= tonumber(NOW) then
    local k = session_keys(sid)
    if redis.call('HEXISTS', k.s, 'ovf') == 1 then -- lib.lua's overflow_later
      overflowed = overflowed + end_session(sid, 'overflow', '', k)
    else
      n = n + end_session(sid, 'timeout', '', k)
    end
    redis.call('ZREM', KDL, sid)
  end
end
return {#SIDS, n + overflowed, overflowed}
