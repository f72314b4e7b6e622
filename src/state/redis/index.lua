-- The ban index, in its own slot. KEYS[1] the table (zset: member ->
-- until_ms), KEYS[2] reasons (hash). ARGV[1] 'add' or 'remove', ARGV[2] the
-- member, and to add: ARGV[3] until_ms (0: now + ARGV[4] ms), ARGV[5] reason.
-- Returns the number of entries added or removed.
if ARGV[1] == 'add' then
  local until_ms = tonumber(ARGV[3])
  if until_ms == 0 then
    until_ms = math.floor(clock_us() / 1000) + tonumber(ARGV[4])
  end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
  return redis.call('ZADD', KEYS[1], int(until_ms), ARGV[2])
end
redis.call('HDEL', KEYS[2], ARGV[2])
return redis.call('ZREM', KEYS[1], ARGV[2])
