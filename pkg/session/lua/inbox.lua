-- inbox.lua applies, on partition q, outbox entries another partition p
-- wrote for it (Store.Apply and Store.DrainOutbox, after commit.lua): each
-- entry whose id is after the last one q applied from p (the inbox hash's
-- field p) is applied, in order, and the hash remembers it, so an entry
-- applied already (a retried drain, two workers draining at a handover)
-- applies nothing. KEYS[1] q's deadlines set, KEYS[2] q's inbox
-- (<P>{q}:in), then the declared sessions (declare_sessions: those of the
-- entries' effects, and the polling members of the rooms their broadcasts
-- reach), then q's shared keys. ARGV[4] the declared sessions,
-- ARGV[5] p; then per entry, oldest first: its id, its packed effects.
-- Returns {entries applied, the sessions declared for delivery only whose
-- mailbox overflowed (lib.lua's overflow_later)}.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
declare_sessions(2)
local src = ARGV[5]
local last = redis.call('HGET', KEYS[2], src)
local function after(a, b) -- stream ids "ms-seq"
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
-- each_effect calls fn for each effect of the entries after last (of
-- every entry with all), in order; it returns the id of the last entry
-- walked and how many it walked.
local function each_effect(fn, all)
  local upto, n = last, 0
  for i = 6, #ARGV, 2 do
    local id = ARGV[i]
    if all or not upto or after(id, upto) then
      local f = unpack_fields(ARGV[i + 1])
      local j = 1
      while j <= #f do
        local op, na = f[j], tonumber(f[j + 1])
        local a = {}
        for k = 1, na do a[k] = f[j + 1 + k] end
        j = j + 2 + na
        fn(op, a)
      end
      upto, n = id, n + 1
    end
  end
  return upto, n
end
local undeclared = false
each_effect(function(op, a) undeclared = undeclared or effect_undeclared(op, a) end, true)
if undeclared then return redis.error_reply(SESSIONS_STALE) end
buffer()
local upto, applied = each_effect(apply_effect)
if applied > 0 then redis.call('HSET', KEYS[2], src, upto) end
flush()
return {applied, OVERFLOWED}
