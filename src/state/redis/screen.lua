-- Bans on a client and the all-traffic limit, in one round trip.
-- KEYS[1] address bans (zset: address -> until_ms), KEYS[2] network bans,
-- KEYS[3] ban reasons (hash), KEYS[4] the client's all-traffic GCRA key.
-- ARGV[1] the address, ARGV[2] 1: check bans, ARGV[3] interval_us (0: no
-- limit), ARGV[4] burst.
-- Returns {now_ms, ban_until_ms (0: none), reason, {net, until_ms, ...},
-- retry_after_us (0: admitted)}.
local now = clock_us()
local now_ms = math.floor(now / 1000)
local until_ms, reason, nets = 0, '', {}
if ARGV[2] == '1' then
  local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
  if score and score > now_ms then
    until_ms = score
    reason = redis.call('HGET', KEYS[3], ARGV[1]) or 'manual'
  end
  nets = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. int(now_ms), '+inf', 'WITHSCORES')
end
local wait = 0
local interval = tonumber(ARGV[3])
if interval > 0 then
  local tat
  tat, wait = gcra_check(KEYS[4], now, interval, tonumber(ARGV[4]))
  if tat then
    gcra_store(KEYS[4], now, tat)
  end
end
return {now_ms, until_ms, reason, nets, wait}
