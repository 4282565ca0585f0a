-- commit_node.lua applies a worker's (or an emitter's) commits where every
-- partition is on one node: one Redis, Sentinel, or a Redis Cluster whose
-- partitions share a hash slot (Store.Apply; bus.Spread is false). It does
-- what commit.lua and inbox.lua do together, in one script and without the
-- outbox: each effect applies at once in its session's partition, a
-- broadcast in every partition, in the commits' order. For a commit with an
-- entry id, the effects apply only if XACK acknowledged the entry now (so a
-- retried or duplicated commit applies nothing twice).
-- KEYS[q + 1] the deadlines set of partition q, for every partition (KEYS[1]
-- is partition 0's), then the shared keys of each partition in turn. ARGV[4] the number of partitions; then per commit:
-- stream, consumer group, id, effect count, then per effect: op, partition
-- (the number of its session's; "" for a broadcast to every partition), arg
-- count, args.
-- Returns {commits applied, {}}: commit.lua's reply with an empty outbox.
local np = tonumber(ARGV[4])
-- within makes partition q's keys the ones the helpers act on.
local function within(q)
  KDL = KEYS[q + 1]
  PP = string.sub(KDL, 1, #KDL - #DEADLINES)
  HOLDERS, ROUTING, MEMBERS, PMEMBERS, ROOMIDX, ROUTES = partition_keys(np + q * (5 + 2 * #GW))
end
for q = 0, np - 1 do
  within(q)
  if routes_stale() then return redis.error_reply(ROUTES_STALE) end
end
buffer()
local applied = each_commit(5, function(op, part, a)
  if part == '' then
    for q = 0, np - 1 do
      within(q)
      apply_effect(op, a)
    end
  else
    within(tonumber(part))
    apply_effect(op, a)
  end
end)
flush()
return {applied, {}}
