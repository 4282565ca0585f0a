-- commit_node.lua applies a worker's (or an emitter's) commits where every
-- partition is on one node: one Redis, Sentinel, or a Redis Cluster whose
-- partitions share a hash slot (Store.Apply; bus.Spread is false). It does
-- what commit.lua and inbox.lua do together, in one script and without the
-- outbox: each effect applies at once in its session's partition, a
-- broadcast in every partition, in the commits' order. For a commit with an
-- entry id, the effects apply only if XACK acknowledged the entry now (so a
-- retried or duplicated commit applies nothing twice).
-- KEYS[q + 1] the deadlines set of partition q, for every partition (KEYS[1]
-- is partition 0's), then the declared sessions (declare_sessions: those
-- of the effects, and the polling members of the rooms the broadcasts
-- reach), then the shared keys of each partition in turn. ARGV[4] the
-- declared sessions' ids, ARGV[5] the number of partitions; then per
-- commit: stream, consumer group, id, effect count, then per effect: op,
-- partition (the number of its session's; "" for a broadcast to every
-- partition), arg count, args.
-- Returns {commits applied, {}}: commit.lua's reply with an empty outbox.
local np = tonumber(ARGV[5])
declare_sessions(np)
-- within makes partition q's keys the ones the helpers act on (each
-- partition's read once).
local blocks = {}
local function within(q)
  local b = blocks[q]
  if not b then
    b = {partition_keys(np + 9 * #SIDS + q * (5 + 2 * #GW))}
    blocks[q] = b
  end
  KDL = KEYS[q + 1]
  HOLDERS, ROUTING, MEMBERS, PMEMBERS, ROOMIDX, ROUTES = b[1], b[2], b[3], b[4], b[5], b[6]
end
-- each_effect calls fn for each effect of the commits (every one with
-- dry), in the partition it applies to (each partition for a broadcast).
local function each_effect(fn, dry)
  return each_commit(6, function(op, part, a)
    if part == '' then
      for q = 0, np - 1 do
        within(q)
        fn(op, a)
      end
    else
      within(tonumber(part))
      fn(op, a)
    end
  end, dry)
end
for q = 0, np - 1 do
  within(q)
  if routes_stale() then return redis.error_reply(ROUTES_STALE) end
end
local undeclared = false
each_effect(function(op, a) undeclared = undeclared or effect_undeclared(op, a) end, true)
if undeclared then return redis.error_reply(SESSIONS_STALE) end
buffer()
local applied = each_effect(apply_effect)
flush()
return {applied, {}}
