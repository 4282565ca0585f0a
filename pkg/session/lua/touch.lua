-- touch.lua marks contact from a POST (Store.Touch). ARGV[4] sid,
-- [5] deadline ms, [6] ttl ms, [7] refresh slack ms. KEYS: the session's.
-- Returns nil (unknown) or {cls, namespaces...}; cls is "" for a session
-- no transport has opened yet. A polling session's deadline is refreshed;
-- a streaming one (htmlfile) gets lh = NOW, the sign of life the gateway
-- holding its stream reads when the stream looks silent (see
-- Store.LastHeard).
local sid = ARGV[4]
local k = own_keys()
local s = k.s
local f = redis.call('HMGET', s, 'cls', 'dl')
local cls = f[1]
if not cls then
  if redis.call('EXISTS', s) == 0 then return false end
  cls = ''
end
if cls == 'poll' then refresh(sid, k, f[2], ARGV[5], ARGV[6], ARGV[7])
elseif cls == 'stream' then redis.call('HSET', s, 'lh', NOW) end
local out = {cls}
for _, ns in ipairs(redis.call('SMEMBERS', k.ns)) do out[#out + 1] = ns end
return out
