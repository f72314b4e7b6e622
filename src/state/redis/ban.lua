-- A ban. KEYS[1] the ban table (zset), KEYS[2] ban reasons (hash), and for
-- an automatic ban KEYS[3], the client's suspicion hash.
-- ARGV: member, duration_ms, reason, and for an automatic ban: the client's
-- new place on the ladder, ban_memory_ms, window_ms.
-- Returns {now_ms, until_ms}; until_ms is 0 when an automatic ban found the
-- client already banned (another replica was first: the ladder moves once).
local now = math.floor(clock_us() / 1000)
local until_ms = now + tonumber(ARGV[2])
if KEYS[3] then
  if (tonumber(redis.call('HGET', KEYS[3], 'until')) or 0) > now then
    return {now, 0}
  end
  redis.call('HDEL', KEYS[3], 'a', 'f', 'l', 'ulo', 'uhi', 'pa', 'pf', 'pl', 'plo', 'phi')
  redis.call('HSET', KEYS[3], 'since', int(now), 'bans', ARGV[4], 'until', int(until_ms))
  local ttl = math.max(2 * tonumber(ARGV[6]), tonumber(ARGV[2]) + tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[3], int(ttl))
end
redis.call('ZADD', KEYS[1], int(until_ms), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {now, until_ms}
