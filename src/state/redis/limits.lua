-- One login attempt against every configured limit, narrowest first.
-- KEYS: one GCRA key per limit.  ARGV: interval_us, burst, per key.
-- Returns {0, 0} when all admit (the attempt is recorded in each), or
-- {index, retry_after_us} of the first that refuses (nothing recorded).
local now = clock_us()
local tats = {}
for i, key in ipairs(KEYS) do
  local tat, wait = gcra_check(key, now, tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]))
  if not tat then
    return {i, wait}
  end
  tats[i] = tat
end
for i, key in ipairs(KEYS) do
  gcra_store(key, now, tats[i])
end
return {0, 0}
