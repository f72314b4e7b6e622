-- Gives back the cell a login attempt took from each per-client limit, when
-- the shop says the login succeeded. KEYS: one GCRA key per limit.
-- ARGV: interval_us per key. A key already gone has a full burst.
local now = clock_us()
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    tat = tat - tonumber(ARGV[i])
    if tat <= now then
      redis.call('DEL', key)
    else
      gcra_store(key, now, tat)
    end
  end
end
return 0
