-- poll.lua serves one polling GET (Store.Poll says which batch a poll
-- gets). ARGV[4] sid, [5] transport, [6] pollid, [7] t, [8] deadline ms,
-- [9] ttl ms, [10] max bytes of an answer, [11] batch confirm wait ms,
-- [12] "1" when re-run after a wake or a recheck, "2" when run as the
-- poll's duration ends (Store.PollEnd), [13] refresh slack ms
-- (see refresh). KEYS: the session's, then the partition's shared keys.
-- Returns nil (unknown), -1 (wrong class), {1, packets, mt, depth, owned}
-- (answer now; owned 1: the poll must confirm or release the batch),
-- {0} or {0, recheck ms} (parked), {2} (superseded by a newer poll: answer
-- 8::), or {3} (the session is held by a stream: parked until it ends).
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
if not node_routed() then return redis.error_reply(NOT_ROUTED) end
local sid, tr, pid, t = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local k = own_keys()
local s = k.s
local f = redis.call('HMGET', s, 'st', 'cls', 'p', 'it', 'ic', 'pg', 'dl', 'io', 'itm', 'rl')
if not f[3] then -- every session has its partition: this one is gone
  local last = redis.call('GET', k.kick)
  if last then
    redis.call('DEL', k.kick)
    return {1, {last}}
  end
  return false
end
local confirmed = false
local me = NODE .. ' ' .. pid
local prev = f[6]
-- A poll released already (release.lua: its request is over) takes
-- nothing: this run was sent before Redis stalled, or re-sent by the
-- client library after a timeout, and its reply has no reader.
if f[10] == me then return {2} end
-- A re-run after a wake that finds another poll parked was superseded; not
-- one that owns the batch in flight: a run of this poll took it and its
-- reply was lost (a timed-out run that Redis executed later), so it is
-- delivered again below.
local owned_by_me = f[8] == me
if ARGV[12] ~= '0' and prev ~= me and not owned_by_me then return {2} end
-- The poll's duration ended with nothing offered to it (lib.lua's
-- deliver): it is no longer parked, so a delivery from now on waits in the
-- mailbox for the next poll instead of being taken for this one.
if ARGV[12] == '2' and not owned_by_me then
  redis.call('HDEL', s, 'pg', 'pq')
  return {2}
end
-- kick answers the poll parked before this one, if another, with 8::.
local function kick()
  if prev and prev ~= me then
    local node, ppid = poller(prev)
    if node then route_to(node, route_kick(sid, ppid)) end
  end
end
if f[2] and f[2] ~= 'poll' then
  -- A poll on a session a stream holds (a client falling back to polling
  -- while its websocket or htmlfile still looks open here) waits; the
  -- stream's end (route C to pg) or the polling duration answers it.
  kick()
  redis.call('HSET', s, 'pg', me)
  return {3}
end
local mb = k.mb
if f[1] == 'new' then open_polling(sid, k, tr, MEMBERS, PMEMBERS) end
refresh(sid, k, f[7], ARGV[8], ARGV[9], ARGV[13])
local ic = tonumber(f[5]) or 0
if ic > 0 and f[8] then confirmed = redis.call('GET', k.cf) == f[8] end
if ic > 0 then
  if confirmed or (t ~= f[4] and f[8]) then
    -- The client got the batch in flight: its answer was written whole
    -- (confirmed), or the poll carries a new t (the 0.9 client polls again
    -- only after an answer arrived; t repeats only if its clock did not
    -- tick). Not a released batch (no owner): its answer was never written,
    -- whatever t the next poll carries (a client retrying a failed poll,
    -- as the 0.9 client's XDomainRequest path does, sends a new t). A
    -- batch offered to a parked poll (off, lib.lua's deliver) that its
    -- gateway could not hand over is released first (Store.ReleaseOffer).
    trim_batch(k)
  else
    local owner = f[8]
    if owner and not owned_by_me then
      -- Its answer may have been written, its confirmation on the way:
      -- look again shortly, until the confirm wait since it was taken.
      local left = (tonumber(f[9]) or 0) + tonumber(ARGV[11]) - tonumber(NOW)
      if left > 0 then
        kick()
        redis.call('HSET', s, 'pg', me)
        return {0, math.min(left, 20)}
      end
    end
    -- Released (its write failed, or its client left), taken by a run of
    -- this poll whose reply was lost, or never confirmed in time (its
    -- gateway died): the answer never reached the client. Deliver it again.
    kick()
    redis.call('HDEL', s, 'pg', 'off')
    redis.call('HSET', s, 'io', me, 'itm', NOW, 'it', t)
    return {1, redis.call('LRANGE', mb, 0, ic - 1), '0', 0, 1}
  end
end
-- Take what waits, up to the byte bound (at least one packet).
local maxb, out, bytes, from = tonumber(ARGV[10]), {}, 0, 0
while true do
  local items = redis.call('LRANGE', mb, from, from + 511)
  local full = false
  for _, it in ipairs(items) do
    if #out > 0 and bytes + #it > maxb then
      full = true
      break
    end
    out[#out + 1] = it
    bytes = bytes + #it
  end
  if full or #items < 512 then break end
  from = from + 512
end
kick()
if #out > 0 then
  redis.call('HDEL', s, 'pg')
  redis.call('HSET', s, 'it', t, 'ic', #out, 'ib', bytes, 'io', me, 'itm', NOW)
  -- mt: when the oldest packet not yet taken was queued (for the delivery
  -- latency and the drain timeout); packets left behind count from now.
  local mt = redis.call('HGET', s, 'mt')
  local depth = redis.call('LLEN', mb)
  if depth > #out then redis.call('HSET', s, 'mt', NOW) else redis.call('HDEL', s, 'mt') end
  return {1, out, mt or '0', depth, 1}
end
-- Parked for packets: the next delivery takes one for this poll and
-- offers it here (pq names this park, pt its cache-buster; lib.lua's
-- deliver).
redis.call('HSET', s, 'pg', me, 'pq', me, 'pt', t)
return {0}
