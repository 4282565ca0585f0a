-- commit.lua applies a worker's (or an emitter's) commits on one partition
-- p, in order (Store.Apply). For a commit with an entry id, the effects
-- apply only if XACK acknowledged the entry now (so a retried or
-- duplicated commit applies nothing twice). Effects on the partition's
-- sessions apply here; those on sessions of other partitions, and a
-- broadcast's share of the other partitions, are appended to the
-- partition's outbox, one entry per target partition, in the same script:
-- they are applied there by inbox.lua, exactly once, in order.
-- KEYS[1] the partition's deadlines set, KEYS[2] its outbox
-- (<P>{p}:out). ARGV[4] the number of partitions, ARGV[5] p; then per
-- commit: stream, consumer group, id, effect count, then per effect: op,
-- partition (the number of its session's; for a broadcast, "" for every
-- partition, or p for this one only), arg count, args.
-- Returns {commits applied, the outbox's entries (at most 1000, oldest
-- first, as XRANGE returns them)}.
local np, me = tonumber(ARGV[4]), ARGV[5]
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
local i, applied = 6, 0
while i <= #ARGV do
  local stream, group, id, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local ok = true
  if id ~= '' then ok = redis.call('XACK', stream, group, id) == 1 end
  for _ = 1, n do
    local op, part, na = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local a = {}
    for j = 1, na do a[j] = ARGV[i + 2 + j] end
    i = i + 3 + na
    if ok then
      if part == me then apply_effect(op, a)
      elseif part == '' then
        apply_effect(op, a)
        for q = 0, np - 1 do
          if tostring(q) ~= me then forward(q, op, a) end
        end
      else forward(tonumber(part), op, a) end
    end
  end
  if ok then applied = applied + 1 end
end
flush()
for q = 0, np - 1 do
  if remote[q] then redis.call('XADD', KEYS[2], '*', OUTBOX_TO, tostring(q), OUTBOX_EFFECTS, pack_fields(remote[q])) end
end
return {applied, redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', OUTBOX_READ)}
