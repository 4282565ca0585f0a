-- ack.lua handles a client's answer to a server emit (Store.AckWrite): the
-- reply channel registered for the id (if any) gets the reply message
-- (reply_message), and the ack signal is written. ARGV[4] sid, [5] id,
-- [6] args, [7..] the signal's stream fields (bus.Signal.Values).
-- KEYS: the session's. Returns 1, or 0 if the session is gone.
local sid, id = ARGV[4], ARGV[5]
local k = own_keys()
local p = redis.call('HGET', k.s, 'p')
if not p then return 0 end
local ch = redis.call('HGET', k.acks, id)
if ch then
  redis.call('HDEL', k.acks, id)
  redis.call('PUBLISH', ch, reply_message(sid, id, ARGV[6]))
end
local a = {'XADD', k.sig, '*'}
for i = 7, #ARGV do a[#a + 1] = ARGV[i] end
redis.call(unpack(a))
return 1
