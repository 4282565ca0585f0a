-- touch.lua marks contact from a POST (Store.Touch, Store.TouchPost) and
-- says whether the POST is a retry of one already committed. ARGV[4] sid,
-- [5] deadline ms, [6] ttl ms, [7] refresh slack ms, [8] the POST's t,
-- [9] the digest of its body ("": no retry check), [10] the confirm wait
-- ms, [11] the POST's transport (xhr-polling, jsonp-polling, htmlfile; ""
-- for Store.Touch).
-- KEYS: the session's (its POST record, <P>{p}:post:<sid>, among them),
-- then KEYS[11] and KEYS[12] the partition's memberships and polling
-- memberships (<P>{p}:members, pmembers). A polling POST to a session no transport has opened yet opens it
-- (lib.lua's open_polling), so that its packets' signals come after the
-- connect signal, as the reference connects a session on any request.
-- A POST must be of its session's kind, a polling POST to a polling
-- session, an htmlfile POST to an htmlfile one: any other (a POST into a
-- websocket session, which whoever learned its sid could use to send in its
-- name or end it) changes nothing and returns -1 (Post.Transport).
-- Returns nil (unknown), -1, or {cls, verdict, namespaces...}; cls is "" for a
-- session no transport has opened yet (an htmlfile POST before its GET).
-- verdict is "n" (a new POST: apply it), "r" (a retry of the recorded
-- POST, whose packets were committed: apply nothing) or "w<ms>" (it may be
-- a retry: ask again after ms). A polling session's deadline is
-- refreshed; a streaming one (htmlfile) gets lh = NOW, the sign of life the
-- gateway holding its stream reads when the stream looks silent (see
-- Store.LastHeard).
local sid = ARGV[4]
local k = own_keys()
local s = k.s
local f = redis.call('HMGET', s, 'cls', 'dl', 'tr')
local cls, tr = f[1], ARGV[11]
if tr ~= '' and cls and not ((tr == 'htmlfile' and f[3] == 'htmlfile') or (tr ~= 'htmlfile' and cls == 'poll')) then
  return -1
end
if not cls then
  if redis.call('EXISTS', s) == 0 then return false end
  cls = ''
  if tr ~= '' and tr ~= 'htmlfile' then
    open_polling(sid, k, tr, KEYS[11], KEYS[12])
    cls = 'poll'
  end
end
if cls == 'poll' then refresh(sid, k, f[2], ARGV[5], ARGV[6], ARGV[7])
elseif cls == 'stream' then redis.call('HSET', s, 'lh', NOW) end
local verdict = 'n'
if ARGV[9] ~= '' then
  -- The record of the last POST committed: t, d (digest), o (its owner,
  -- "<node> <post id>"), tm (when it was committed, unix ms), c (the owner
  -- whose answer was written whole, "" until then). A POST with the same
  -- t and digest is the same POST retried unless that answer was
  -- confirmed (then it is the client's next POST, its clock not having
  -- ticked); while the confirmation may still be on its way, it waits.
  local r = redis.call('HMGET', k.post, 't', 'd', 'o', 'tm', 'c')
  if r[3] and r[1] == ARGV[8] and r[2] == ARGV[9] and r[5] ~= r[3] then
    local left = (tonumber(r[4]) or 0) + tonumber(ARGV[10]) - tonumber(NOW)
    if left > 0 then verdict = 'w' .. math.min(left, 20) else verdict = 'r' end
  end
end
local out = {cls, verdict}
for _, ns in ipairs(redis.call('SMEMBERS', k.ns)) do out[#out + 1] = ns end
return out
