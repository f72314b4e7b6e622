-- Drops expired bans, then lists those in force.
-- KEYS[1] address bans, KEYS[2] network bans, KEYS[3] reasons.
-- ARGV[1] 'list' or 'count'.
-- Returns {now_ms, count, {member, until_ms, reason, ...}}.
local now = math.floor(clock_us() / 1000)
local listed, count = {}, 0
for t = 1, 2 do
  local expired = redis.call('ZRANGEBYSCORE', KEYS[t], '-inf', int(now), 'LIMIT', 0, 1000)
  if #expired > 0 then
    redis.call('HDEL', KEYS[3], unpack(expired))
    redis.call('ZREM', KEYS[t], unpack(expired))
  end
  count = count + redis.call('ZCARD', KEYS[t])
  if ARGV[1] == 'list' then
    local live = redis.call('ZRANGE', KEYS[t], 0, -1, 'WITHSCORES')
    for i = 1, #live, 2 do
      listed[#listed + 1] = live[i]
      listed[#listed + 1] = live[i + 1]
      listed[#listed + 1] = redis.call('HGET', KEYS[3], live[i]) or 'manual'
    end
  end
end
return {now, count, listed}
