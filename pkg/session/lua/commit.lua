-- commit.lua applies a worker's (or an emitter's) commits on one partition
-- p, in order (Store.Apply). For a commit with an entry id, the effects
-- apply only if XACK acknowledged the entry now (so a retried or
-- duplicated commit applies nothing twice). Effects on the partition's
-- sessions apply here; those on sessions of other partitions, and a
-- broadcast's share of the other partitions, are appended to the
-- partition's outbox, one entry per target partition, in the same script:
-- they are applied there by inbox.lua, exactly once, in order.
-- KEYS[1] the partition's deadlines set, KEYS[2] its outbox
-- (<P>{p}:out), KEYS[3] its signal stream (<P>{p}:sig: the stream of every
-- commit with an entry id), then the declared sessions (declare_sessions:
-- those of the effects applied here, and the polling members of the rooms
-- its broadcasts reach), then the partition's shared keys. ARGV[4] the
-- declared sessions, ARGV[5] the number of partitions, ARGV[6] p;
-- then per commit: stream, consumer group, id, effect count, then per effect: op,
-- partition (the number of its session's; for a broadcast, "" for every
-- partition, or p for this one only), arg count, args.
-- Returns {commits applied, the outbox's entries (at most 1000, oldest
-- first, as XRANGE returns them), the sessions declared for delivery only
-- whose mailbox overflowed (lib.lua's overflow_later)}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
declare_sessions(3)
local np, me = tonumber(ARGV[5]), ARGV[6]
local undeclared = false
if each_commit(7, function(op, part, a)
  if part == me or part == '' then undeclared = undeclared or effect_undeclared(op, a) end
end, true, {[KEYS[3]] = true}) < 0 then return redis.error_reply(STREAM_UNDECLARED) end
if undeclared then return redis.error_reply(SESSIONS_STALE) end
local remote = {} -- partition number -> fields of its effects
local function forward(q, op, a)
  local r = remote[q]
  if not r then
    r = {}
    remote[q] = r
  end
  r[#r + 1] = op
  r[#r + 1] = tostring(#a)
  for _, v in ipairs(a) do r[#r + 1] = v end
end
buffer()
local applied = each_commit(7, function(op, part, a)
  if part == me then apply_effect(op, a)
  elseif part == '' then
    apply_effect(op, a)
    for q = 0, np - 1 do
      if tostring(q) ~= me then forward(q, op, a) end
    end
  else forward(tonumber(part), op, a) end
end)
flush()
for q = 0, np - 1 do
  if remote[q] then redis.call('XADD', KEYS[2], '*', OUTBOX_TO, tostring(q), OUTBOX_EFFECTS, pack_fields(remote[q])) end
end
return {applied, redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', OUTBOX_READ), OVERFLOWED}
