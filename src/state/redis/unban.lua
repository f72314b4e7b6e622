-- Lifts a ban. KEYS[1] the ban table, KEYS[2] reasons, and for an address
-- KEYS[3], its suspicion hash (its place on the ladder stays).
-- ARGV[1] the member. Returns 1 if there was a ban.
redis.call('HDEL', KEYS[2], ARGV[1])
if KEYS[3] then
  redis.call('HDEL', KEYS[3], 'until')
end
return redis.call('ZREM', KEYS[1], ARGV[1])
