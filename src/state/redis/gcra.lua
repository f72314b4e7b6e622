-- GCRA, as governor computes it: one theoretical arrival time (TAT, in
-- microseconds of Redis' clock) per key. An event is admitted when the TAT
-- is at most `interval * (burst - 1)` ahead of now.
local function clock_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Integers as exact decimal strings (Lua's default keeps 14 digits).
local function int(x)
  return string.format('%.0f', x)
end

-- Returns the new TAT if `key` admits one event now, or nil and the wait.
local function gcra_check(key, now, interval, burst)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then
    tat = now
  end
  local tolerance = interval * (burst - 1)
  if tat - now > tolerance then
    return nil, tat - now - tolerance
  end
  return tat + interval, 0
end

-- Stores a TAT; the key expires when it would be indistinguishable from a
-- fresh one, so idle clients cost nothing.
local function gcra_store(key, now, tat)
  redis.call('SET', key, int(tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
end
