-- A ban, in the slot of its target. KEYS[1] the target's ban (hash: until,
-- reason), and for an automatic ban KEYS[2], the client's suspicion hash.
-- ARGV: duration_ms, reason, and for an automatic ban: the client's new
-- place on the ladder, ban_memory_ms, window_ms.
-- Returns {now_ms, until_ms}; until_ms is 0 when an automatic ban found the
-- client already banned (another replica was first: the ladder moves once).
local now = math.floor(clock_us() / 1000)
local until_ms = now + tonumber(ARGV[1])
if KEYS[2] then
  if (tonumber(redis.call('HGET', KEYS[2], 'until')) or 0) > now then
    return {now, 0}
  end
  redis.call('HDEL', KEYS[2], 'a', 'f', 'l', 'ulo', 'uhi', 'pa', 'pf', 'pl', 'plo', 'phi')
  redis.call('HSET', KEYS[2], 'since', int(now), 'bans', ARGV[3], 'until', int(until_ms))
  local ttl = math.max(2 * tonumber(ARGV[5]), tonumber(ARGV[1]) + tonumber(ARGV[4]))
  redis.call('PEXPIRE', KEYS[2], int(ttl))
end
redis.call('HSET', KEYS[1], 'until', int(until_ms), 'reason', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], int(until_ms))
return {now, until_ms}
