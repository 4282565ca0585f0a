-- inbox.lua applies, on partition q, outbox entries another partition p
-- wrote for it (Store.Apply and Store.DrainOutbox, after commit.lua): each
-- entry whose id is after the last one q applied from p (the inbox hash's
-- field p) is applied, in order, and the hash remembers it, so an entry
-- applied already (a retried drain, two workers draining at a handover)
-- applies nothing. KEYS[1] q's deadlines set, KEYS[2] q's inbox
-- (<P>{q}:in). ARGV[4] p; then per entry, oldest first: its id, its packed
-- effects. Returns the number of entries applied.
if routes_stale() then return redis.error_reply(ROUTES_STALE) end
local src = ARGV[4]
local last = redis.call('HGET', KEYS[2], src)
local function after(a, b) -- stream ids "ms-seq"
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
buffer()
local applied = 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if not last or after(id, last) then
    local f = unpack_fields(ARGV[i + 1])
    local j = 1
    while j <= #f do
      local op, na = f[j], tonumber(f[j + 1])
      local a = {}
      for k = 1, na do a[k] = f[j + 1 + k] end
      j = j + 2 + na
      apply_effect(op, a)
    end
    last = id
    applied = applied + 1
  end
end
if applied > 0 then redis.call('HSET', KEYS[2], src, last) end
flush()
return applied
