package session

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// lib is prepended to every script. ARGV[1] is the key prefix, ARGV[2] the
// time in unix milliseconds, ARGV[3] the node id of the gateway (or worker)
// running the script; script arguments start at ARGV[4].
//
// Key layout (see docs/redis.md):
//
//	<P>s:{sid}      hash: p (partition), st (new|open), tr (transport), cls (poll|stream),
//	                gw (node holding the stream), pg ("<node> <pollid>" of the parked poll),
//	                it/ic/ib (cache-buster, packets and bytes of the batch in flight),
//	                io ("<node> <pollid>" of the poll whose answer carries the batch, until it
//	                confirms or releases it), itm (unix ms when that poll took it),
//	                ct (created ms), hs (handshake JSON),
//	                mt (unix ms when the oldest packet not yet taken from the mailbox was queued),
//	                mbb (bytes in the mailbox), mxb/mxw (the mailbox's byte bound and drain
//	                timeout ms, written at the handshake),
//	                dl (the deadline a poll last wrote to deadlines, unix ms),
//	                lh (streaming sessions: unix ms of the last POST, a sign of life for the holder)
//	<P>mb:{sid}     list: outbound packets of a polling session (the mailbox)
//	<P>ns:{sid}     set: connected namespaces ("" is the default one)
//	<P>rooms:{sid}  set: "<ns>:<room>" the session is in
//	<P>acks:{sid}   hash: server ack id -> reply channel (workers)
//	<P>kick:{sid}   string, 60 s: the last packet (0::) of a polling session the server ended, for its next poll
//	<P>cf:{sid}     string, TTL: "<node> <pollid>" of the last poll whose answer was written whole (the
//	                batch in flight is confirmed when it equals io)
//	<P>deadlines    zset: sid -> unix ms when the session expires unless contacted
//	<P>nsm:<ns>     set: sids connected to namespace ns; <P>nsp:<ns> the polling ones
//	<P>room:<ns>:<room> set: sids in the room; <P>roomp:<ns>:<room> the polling ones
//	<P>gwss:<node>  set: streaming sids held by gateway node
//	<P>gws          set: gateway nodes; <P>gwalive:<node> their liveness keys (TTL)
//	<P>sig:{p}      stream: signals of partition p
var lib = `
local P, NOW, NODE = ARGV[1], ARGV[2], ARGV[3]
-- Mailbox bounds for sessions created before they were written into the
-- session (mxb, mxw): the Go defaults.
local MB_DEFAULT, MB_WAIT_DEFAULT, MB_HARD = ` + strconv.Itoa(DefaultMailboxBytes) + `, ` +
	strconv.FormatInt(DefaultMailboxDrainTimeout.Milliseconds(), 10) + `, ` + strconv.Itoa(MailboxHardFactor) + `
local KDL = P .. 'deadlines'
local function ks(sid) return P .. 's:{' .. sid .. '}' end
local function kmb(sid) return P .. 'mb:{' .. sid .. '}' end
local function kns(sid) return P .. 'ns:{' .. sid .. '}' end
local function krooms(sid) return P .. 'rooms:{' .. sid .. '}' end
local function kacks(sid) return P .. 'acks:{' .. sid .. '}' end
local function kkick(sid) return P .. 'kick:{' .. sid .. '}' end
local function kcf(sid) return P .. 'cf:{' .. sid .. '}' end

-- xadd appends a signal to partition p's stream, packed as bus.Signal.Pack
-- does (schema version 2); extra holds query, transport or reason.
local function xadd(sid, p, kind, ns, extra)
  extra = extra or {}
  local f = {'2', kind, sid, ns, NODE, NOW, '', '', '', '', '', extra.query or '', extra.transport or '', extra.reason or '', ''}
  local parts = {}
  for i, v in ipairs(f) do parts[i] = #v .. ':' .. v end
  return redis.call('XADD', P .. 'sig:{' .. p .. '}', '*', 's', table.concat(parts))
end

-- Route messages are published at once, or, once a script called
-- buffer(), collected and published by flush() at its end: consecutive
-- messages for one channel go as one batch message
-- ("M\n" then "<byte length>\n<message>" for each), in order.
local BUF = nil
local function buffer() BUF = {} end
local function pub(ch, msg)
  if not BUF then redis.call('PUBLISH', ch, msg) return end
  local last = BUF[#BUF]
  if last and last[1] == ch then
    last[2][#last[2] + 1] = msg
  else
    BUF[#BUF + 1] = {ch, {msg}}
  end
end
local function flush()
  local buf = BUF or {}
  BUF = nil
  for _, e in ipairs(buf) do
    local msgs = e[2]
    if #msgs == 1 then
      redis.call('PUBLISH', e[1], msgs[1])
    else
      local parts = {'M\n'}
      for _, m in ipairs(msgs) do parts[#parts + 1] = #m .. '\n' .. m end
      redis.call('PUBLISH', e[1], table.concat(parts))
    end
  end
end
local function publish(node, msg) pub(P .. 'gw:' .. node, msg) end

local function poller(pg)
  if not pg then return nil, nil end
  return string.match(pg, '^(%S+) (%S+)$')
end

-- end_session ends a session exactly once: one disconnect signal per
-- connected namespace (the default one last), every index cleaned, the
-- holder of its stream or parked poll told. Returns 1, or 0 if it was gone.
local function end_session(sid, reason, packet)
  local s = ks(sid)
  local f = redis.call('HMGET', s, 'p', 'gw', 'pg', 'cls')
  if not f[1] then return 0 end
  local p, gw, pg = f[1], f[2], f[3]
  if packet and packet ~= '' and f[4] ~= 'stream' then
    -- A polling client may be between polls: its next poll gets the last
    -- packet (e.g. 0::, so it knows it was booted) instead of an error.
    redis.call('SET', kkick(sid), packet, 'PX', 60000)
  end
  local nss = redis.call('SMEMBERS', kns(sid))
  table.sort(nss, function(a, b) return a > b end)
  for _, ns in ipairs(nss) do
    xadd(sid, p, 'disconnect', ns, {reason = reason})
    redis.call('SREM', P .. 'nsm:' .. ns, sid)
    redis.call('SREM', P .. 'nsp:' .. ns, sid)
  end
  for _, r in ipairs(redis.call('SMEMBERS', krooms(sid))) do
    redis.call('SREM', P .. 'room:' .. r, sid)
    redis.call('SREM', P .. 'roomp:' .. r, sid)
  end
  redis.call('ZREM', KDL, sid)
  local msg = 'C\n' .. sid .. '\n' .. reason .. '\n' .. (packet or '')
  if gw then
    redis.call('SREM', P .. 'gwss:' .. gw, sid)
    publish(gw, msg)
  end
  local pnode = poller(pg)
  if pnode and pnode ~= gw then publish(pnode, msg) end
  redis.call('DEL', s, kmb(sid), kns(sid), krooms(sid), kacks(sid), kcf(sid))
  return 1
end

-- deliver queues packets for a session: published to the gateway holding
-- its stream, else appended to its mailbox (waking a parked poll).
-- Returns 1, 0 when there is no such session, -1 when the mailbox
-- overflowed (the session is then ended with reason "overflow"): its bytes
-- would pass mxb while its oldest packet has waited more than mxw ms (the
-- client does not drain it), or pass MB_HARD times mxb.
local function deliver(sid, packets)
  local s = ks(sid)
  local f = redis.call('HMGET', s, 'cls', 'gw', 'pg', 'p', 'mbb', 'mt', 'mxb', 'mxw')
  if not f[4] then return 0 end -- every session has its partition
  if f[1] == 'stream' and f[2] then
    for _, pk in ipairs(packets) do publish(f[2], 'D\n' .. sid .. '\n' .. NOW .. '\n' .. pk) end
    return 1
  end
  local add = 0
  for _, pk in ipairs(packets) do add = add + #pk end
  local bytes = (tonumber(f[5]) or 0) + add
  local bound = tonumber(f[7]) or MB_DEFAULT
  if bytes > bound then
    local waited = 0
    if f[6] then waited = tonumber(NOW) - tonumber(f[6]) end
    if bytes > MB_HARD * bound or waited > (tonumber(f[8]) or MB_WAIT_DEFAULT) then
      end_session(sid, 'overflow', '')
      return -1
    end
  end
  local mb = kmb(sid)
  redis.call('HSETNX', s, 'mt', NOW)
  redis.call('HSET', s, 'mbb', bytes)
  redis.call('RPUSH', mb, unpack(packets))
  local ttl = redis.call('PTTL', s)
  if ttl > 0 then redis.call('PEXPIRE', mb, ttl) end
  local node, pid = poller(f[3])
  if node then publish(node, 'W\n' .. sid .. '\n' .. pid) end
  return 1
end

-- leave_ns disconnects one namespace of a session: packet (if any) is
-- delivered first, the session leaves the namespace's rooms, the gateway
-- holding its stream is told, and the disconnect signal is written. Returns
-- 1, or 0 when the session or the namespace membership was gone.
local function leave_ns(sid, ns, reason, packet)
  local f = redis.call('HMGET', ks(sid), 'p', 'gw')
  if not f[1] then return 0 end
  if packet ~= '' then deliver(sid, {packet}) end
  if redis.call('SREM', kns(sid), ns) == 0 then return 0 end
  redis.call('SREM', P .. 'nsm:' .. ns, sid)
  redis.call('SREM', P .. 'nsp:' .. ns, sid)
  for _, r in ipairs(redis.call('SMEMBERS', krooms(sid))) do
    if string.sub(r, 1, #ns + 1) == ns .. ':' then
      redis.call('SREM', P .. 'room:' .. r, sid)
      redis.call('SREM', P .. 'roomp:' .. r, sid)
      redis.call('SREM', krooms(sid), r)
    end
  end
  if f[2] then publish(f[2], 'L\n' .. sid .. '\n' .. ns .. '\n') end
  xadd(sid, f[1], 'disconnect', ns, {reason = reason})
  return 1
end

-- trim_batch drops the batch in flight from the head of the mailbox (its
-- answer reached the client) and forgets it.
local function trim_batch(sid)
  local s = ks(sid)
  local f = redis.call('HMGET', s, 'ic', 'ib', 'mbb')
  local ic = tonumber(f[1]) or 0
  if ic > 0 then redis.call('LTRIM', kmb(sid), ic, -1) end
  local left = (tonumber(f[3]) or 0) - (tonumber(f[2]) or 0)
  if left < 0 then left = 0 end
  redis.call('HSET', s, 'ic', 0, 'mbb', left)
  redis.call('HDEL', s, 'io', 'itm', 'ib')
end

local function expire_all(sid, ttl)
  for _, k in ipairs({ks(sid), kmb(sid), kns(sid), krooms(sid), kacks(sid)}) do
    redis.call('PEXPIRE', k, ttl)
  end
end

-- refresh pushes a polling session's deadline and its keys' TTL forward
-- unless the deadline written last (dl, the session hash field) is less
-- than slack ms short of the new one: a client polling many times a second
-- pays for it about once per slack, and its deadline is never more than
-- slack short.
local function refresh(sid, dl, deadline, ttl, slack)
  if dl and tonumber(deadline) - tonumber(dl) < tonumber(slack) then return end
  redis.call('ZADD', KDL, deadline, sid)
  expire_all(sid, ttl)
  redis.call('HSET', ks(sid), 'dl', deadline)
end
`

// openScript attaches a streaming transport held by NODE.
// ARGV[4] sid, ARGV[5] transport.
// Returns nil (unknown), -1 (wrong class), or {first, {queued packets}}.
var openScript = redis.NewScript(lib + `
local sid, tr = ARGV[4], ARGV[5]
local s = ks(sid)
if redis.call('EXISTS', s) == 0 then return false end
local f = redis.call('HMGET', s, 'st', 'cls', 'p', 'gw')
if f[2] and f[2] ~= 'stream' then return -1 end
local first = 0
if f[1] == 'new' then
  first = 1
  redis.call('HSET', s, 'st', 'open', 'tr', tr, 'cls', 'stream')
  redis.call('SADD', kns(sid), '')
  redis.call('SADD', P .. 'nsm:', sid)
  xadd(sid, f[3], 'connect', '', {transport = tr})
end
if f[4] and f[4] ~= NODE then
  redis.call('SREM', P .. 'gwss:' .. f[4], sid)
  publish(f[4], 'C\n' .. sid .. '\nreplaced\n')
end
redis.call('HSET', s, 'gw', NODE)
redis.call('SADD', P .. 'gwss:' .. NODE, sid)
redis.call('ZREM', KDL, sid)
for _, k in ipairs({s, kns(sid), krooms(sid), kacks(sid)}) do redis.call('PERSIST', k) end
local q = redis.call('LRANGE', kmb(sid), 0, -1)
redis.call('DEL', kmb(sid))
redis.call('HDEL', s, 'mbb', 'mt', 'it', 'ic', 'ib', 'io', 'itm')
return {first, q}
`)

// pollScript serves one polling GET (Store.Poll says which batch a poll
// gets).
// ARGV[4] sid, [5] transport, [6] pollid, [7] t, [8] deadline ms, [9] ttl ms,
// [10] max bytes of an answer, [11] batch confirm wait ms, [12] "1" when
// re-run after a wake or a recheck, [13] refresh slack ms (see refresh).
// Returns nil (unknown), -1 (wrong class), {1, packets, mt, depth, owned}
// (answer now; owned 1: the poll must confirm or release the batch),
// {0} or {0, recheck ms} (parked), {2} (superseded by a newer poll: answer
// 8::), or {3} (the session is held by a stream: parked until it ends).
var pollScript = redis.NewScript(lib + `
local sid, tr, pid, t = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local s = ks(sid)
if redis.call('EXISTS', s) == 0 then
  local last = redis.call('GET', kkick(sid))
  if last then
    redis.call('DEL', kkick(sid))
    return {1, {last}}
  end
  return false
end
local f = redis.call('HMGET', s, 'st', 'cls', 'p', 'it', 'ic', 'pg', 'dl', 'io', 'itm')
local confirmed = false
local me = NODE .. ' ' .. pid
local prev = f[6]
if ARGV[12] == '1' and prev ~= me then return {2} end
-- kick answers the poll parked before this one, if another, with 8::.
local function kick()
  if prev and prev ~= me then
    local node, ppid = poller(prev)
    if node then publish(node, 'K\n' .. sid .. '\n' .. ppid) end
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
local mb = kmb(sid)
if f[1] == 'new' then
  redis.call('HSET', s, 'st', 'open', 'tr', tr, 'cls', 'poll')
  redis.call('SADD', kns(sid), '')
  redis.call('SADD', P .. 'nsm:', sid)
  redis.call('SADD', P .. 'nsp:', sid)
  xadd(sid, f[3], 'connect', '', {transport = tr})
  redis.call('LPUSH', mb, '1::')
  redis.call('HINCRBY', s, 'mbb', 3)
end
refresh(sid, f[7], ARGV[8], ARGV[9], ARGV[13])
local ic = tonumber(f[5]) or 0
if ic > 0 and f[8] then confirmed = redis.call('GET', kcf(sid)) == f[8] end
if ic > 0 then
  if t ~= f[4] or confirmed then
    -- The client got the batch in flight: its answer was written whole
    -- (confirmed), or the poll carries a new t (the 0.9 client polls again
    -- only after an answer arrived; t repeats only if its clock did not tick).
    trim_batch(sid)
  else
    local owner = f[8]
    if owner and owner ~= me then
      -- Its answer may have been written, its confirmation on the way:
      -- look again shortly, until the confirm wait since it was taken.
      local left = (tonumber(f[9]) or 0) + tonumber(ARGV[11]) - tonumber(NOW)
      if left > 0 then
        kick()
        redis.call('HSET', s, 'pg', me)
        return {0, math.min(left, 20)}
      end
    end
    -- Released (its write failed), or never confirmed in time (its gateway
    -- died): the answer never reached the client. Deliver it again.
    kick()
    redis.call('HDEL', s, 'pg')
    redis.call('HSET', s, 'io', me, 'itm', NOW)
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
redis.call('HSET', s, 'pg', me)
return {0}
`)

// releaseScript gives up the batch in flight taken by poll pollid of NODE
// (its answer could not be written), if it still owns it, and wakes the
// poll parked since, which then delivers it again. ARGV[4] sid, [5] pollid.
// Returns 1, or 0 when the poll no longer owns the batch.
var releaseScript = redis.NewScript(lib + `
local sid = ARGV[4]
local s = ks(sid)
local f = redis.call('HMGET', s, 'io', 'pg')
if f[1] ~= NODE .. ' ' .. ARGV[5] then return 0 end
redis.call('HDEL', s, 'io', 'itm')
local node, pid = poller(f[2])
if node then publish(node, 'W\n' .. sid .. '\n' .. pid) end
return 1
`)

// touchScript marks contact from a POST. ARGV[4] sid, [5] deadline ms,
// [6] ttl ms, [7] refresh slack ms. Returns nil (unknown) or {cls, namespaces...}; cls is "" for a
// session no transport has opened yet. A polling session's deadline is
// refreshed; a streaming one (htmlfile) gets lh = NOW, the sign of life
// the gateway holding its stream reads when the stream looks silent (see
// Store.LastHeard).
var touchScript = redis.NewScript(lib + `
local sid = ARGV[4]
local s = ks(sid)
local f = redis.call('HMGET', s, 'cls', 'dl')
local cls = f[1]
if not cls then
  if redis.call('EXISTS', s) == 0 then return false end
  cls = ''
end
if cls == 'poll' then refresh(sid, f[2], ARGV[5], ARGV[6], ARGV[7])
elseif cls == 'stream' then redis.call('HSET', s, 'lh', NOW) end
local out = {cls}
for _, ns in ipairs(redis.call('SMEMBERS', kns(sid))) do out[#out + 1] = ns end
return out
`)

// endScript ends a session. ARGV[4] sid, [5] reason, [6] packet for the
// holder to write before closing ("" none). Returns 1 or 0.
var endScript = redis.NewScript(lib + `
return end_session(ARGV[4], ARGV[5], ARGV[6])
`)

// deliverScript: ARGV[4] sid, [5..] packets.
var deliverScript = redis.NewScript(lib + `
local packets = {}
for i = 5, #ARGV do packets[#packets + 1] = ARGV[i] end
return deliver(ARGV[4], packets)
`)

// joinScript connects a namespace. ARGV[4] sid, [5] ns, [6] query,
// [7] "1" to queue the 1::<ns> echo (polling sessions; streaming
// gateways write it themselves). Returns 1, or 0 if the session is gone.
var joinScript = redis.NewScript(lib + `
local sid, ns = ARGV[4], ARGV[5]
local s = ks(sid)
local f = redis.call('HMGET', s, 'p', 'cls', 'gw')
if not f[1] then return 0 end
if f[2] == 'stream' and f[3] then publish(f[3], 'J\n' .. sid .. '\n' .. ns .. '\n') end
if redis.call('SADD', kns(sid), ns) == 1 then
  redis.call('SADD', P .. 'nsm:' .. ns, sid)
  if f[2] == 'poll' then redis.call('SADD', P .. 'nsp:' .. ns, sid) end
  xadd(sid, f[1], 'connect', ns, {query = ARGV[6]})
end
if ARGV[7] == '1' then deliver(sid, {'1::' .. ns}) end
return 1
`)

// leaveScript disconnects one namespace. ARGV[4] sid, [5] ns, [6] reason.
var leaveScript = redis.NewScript(lib + `
return leave_ns(ARGV[4], ARGV[5], ARGV[6], '')
`)

// reapDeadlinesScript ends sessions whose deadline passed. ARGV[4] limit.
// Returns {examined, ended}.
var reapDeadlinesScript = redis.NewScript(lib + `
local sids = redis.call('ZRANGEBYSCORE', KDL, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, sid in ipairs(sids) do
  n = n + end_session(sid, 'timeout', '')
  redis.call('ZREM', KDL, sid)
end
return {#sids, n}
`)

// reapGatewayScript ends the streaming sessions of a dead gateway.
// ARGV[4] node, [5] limit. Returns -1 if the node is alive, else the
// number of sessions ended; the node is forgotten once it holds none.
var reapGatewayScript = redis.NewScript(lib + `
local node = ARGV[4]
if redis.call('EXISTS', P .. 'gwalive:' .. node) == 1 then return -1 end
local set = P .. 'gwss:' .. node
local sids = redis.call('SPOP', set, tonumber(ARGV[5]))
local n = 0
for _, sid in ipairs(sids) do
  if redis.call('HGET', ks(sid), 'gw') == node then
    n = n + end_session(sid, 'gateway_lost', '')
  end
end
if redis.call('SCARD', set) == 0 then redis.call('SREM', P .. 'gws', node) end
return n
`)
