-- The ban on a client and its all-traffic limit, in one round trip.
-- KEYS[1] the client's ban (hash: until, reason), KEYS[2] its all-traffic
-- GCRA key, and on a single Redis KEYS[3], the network ban index (zset:
-- network -> until_ms; on a cluster the caller looks up network bans), and
-- for an IPv6 client KEYS[4], the ban on its network of `ipv6_prefix`.
-- ARGV[1] 1: check bans, ARGV[2] interval_us (0: no limit), ARGV[3] burst.
-- Returns {now_ms, ban_until_ms (0: none), reason, {net, until_ms, ...},
-- retry_after_us (0: admitted)}.
local now = clock_us()
local now_ms = math.floor(now / 1000)
local until_ms, reason, nets = 0, '', {}
if ARGV[1] == '1' then
  local ban = redis.call('HMGET', KEYS[1], 'until', 'reason')
  local score = tonumber(ban[1])
  if score and score > now_ms then
    until_ms = score
    reason = ban[2] or 'manual'
  end
  if KEYS[4] then
    local net = redis.call('HMGET', KEYS[4], 'until', 'reason')
    local net_until = tonumber(net[1])
    if net_until and net_until > now_ms and net_until > until_ms then
      until_ms = net_until
      reason = net[2] or 'manual'
    end
  end
  if KEYS[3] then
    nets = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. int(now_ms), '+inf', 'WITHSCORES')
  end
end
local wait = 0
local interval = tonumber(ARGV[2])
if interval > 0 then
  local tat
  tat, wait = gcra_check(KEYS[2], now, interval, tonumber(ARGV[3]))
  if tat then
    gcra_store(KEYS[2], now, tat)
  end
end
return {now_ms, until_ms, reason, nets, wait}
