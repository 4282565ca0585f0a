-- commit_node.lua applies a worker's (or an emitter's) commits where every
-- partition is on one node: one Redis, Sentinel, or a Redis Cluster whose
-- partitions share a hash slot (Store.Apply; bus.Spread is false). It does
-- what commit.lua and inbox.lua do together, in one script and without the
-- outbox: each effect applies at once in its session's partition, a
-- broadcast in every partition, in the commits' order. For a commit with an
-- entry id, the effects apply only if XACK acknowledged the entry now (so a
-- retried or duplicated commit applies nothing twice).
-- KEYS[q + 1] the deadlines set of partition q, for every partition (KEYS[1]
-- is partition 0's), KEYS[np + q + 1] its signal stream (np partitions),
-- then the declared sessions (declare_sessions: those
-- of the effects, and the polling members of the rooms the broadcasts
-- reach), then the shared keys of each partition the effects reach, in
-- the order of ARGV[6]. ARGV[4] the declared sessions, ARGV[5] the number
-- of partitions, ARGV[6] the partitions the effects reach (their numbers
-- joined by ','); then per commit: stream, consumer group, id, effect
-- count, then per effect: op, partition (the number of its session's; ""
-- for a broadcast to every partition), arg count, args.
-- Returns {commits applied, {}, overflowed}: commit.lua's reply with an
-- empty outbox.
local np = tonumber(ARGV[5])
local shared = declare_sessions(2 * np)
local streams = {} -- the signal streams, declared
for q = 1, np do streams[KEYS[np + q]] = true end
-- The shared keys of each partition ARGV[6] names, read once; within(q)
-- makes partition q's keys the ones the helpers act on.
local blocks = {}
for q in string.gmatch(ARGV[6], '%d+') do
  blocks[tonumber(q)] = {partition_keys(shared)}
  shared = shared + 5 + 2 * #GW
end
local function within(q)
  local b = blocks[q]
  if not b then error('the shared keys of partition ' .. q .. ' are not declared') end
  KDL = KEYS[q + 1]
  HOLDERS, ROUTING, MEMBERS, PMEMBERS, ROOMIDX, ROUTES = b[1], b[2], b[3], b[4], b[5], b[6]
end
-- each_effect calls fn for each effect of the commits (every one with
-- dry), in the partition it applies to (each partition for a broadcast).
local function each_effect(fn, dry)
  return each_commit(7, function(op, part, a)
    if part == '' then
      for q = 0, np - 1 do
        within(q)
        fn(op, a)
      end
    else
      within(tonumber(part))
      fn(op, a)
    end
  end, dry, streams)
end
for q in pairs(blocks) do
  within(q)
  if routes_stale() then return redis.error_reply(ROUTES_STALE) end
end
local undeclared = false
-- (A session's declaration does not depend on the partition an effect
-- applies in; that partition's shared keys must be declared, or the
-- script fails here, before it writes.)
local function reached(part)
  if part ~= '' then return blocks[tonumber(part)] ~= nil end
  for q = 0, np - 1 do
    if not blocks[q] then return false end
  end
  return true
end
if each_commit(7, function(op, part, a)
  if not reached(part) then error('the shared keys of partition ' .. part .. ' are not declared') end
  undeclared = undeclared or effect_undeclared(op, a)
end, true, streams) < 0 then
  return redis.error_reply(STREAM_UNDECLARED)
end
if undeclared then return redis.error_reply(SESSIONS_STALE) end
buffer()
local applied = each_effect(apply_effect)
flush()
return {applied, {}, OVERFLOWED}
