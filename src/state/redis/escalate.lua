-- A network's record of banned addresses and successful logins, and its
-- escalation to a ban, in the network's slot. KEYS[1] the record (hash:
-- `since` and `ok`, the successes of a fixed window; `a:ADDR`, when each
-- address was banned), KEYS[2] the network's ban (hash: until, reason).
-- ARGV[1] 'success' or 'ban', ARGV[2] within_ms; for 'ban': ARGV[3] the
-- address banned, ARGV[4] addresses that ban the network, ARGV[5] successes
-- that spare it (a NAT of customers), ARGV[6] until_ms of the address' ban,
-- ARGV[7] reason.
-- Returns {now_ms, until_ms}; until_ms is 0 when the network is not banned
-- now (not enough addresses, a NAT, or banned already).
local now = math.floor(clock_us() / 1000)
local within = tonumber(ARGV[2])
local since = tonumber(redis.call('HGET', KEYS[1], 'since')) or now
local ok = tonumber(redis.call('HGET', KEYS[1], 'ok')) or 0
if now - since >= within then
  since, ok = now, 0
end
if ARGV[1] == 'success' then
  ok = ok + 1
else
  redis.call('HSET', KEYS[1], 'a:' .. ARGV[3], int(now))
end
redis.call('HSET', KEYS[1], 'since', int(since), 'ok', int(ok))
redis.call('PEXPIRE', KEYS[1], int(within))
if ARGV[1] == 'success' then
  return {now, 0}
end
local banned = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'a:' then
    if now - tonumber(fields[i + 1]) < within then
      banned = banned + 1
    else
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
end
if banned < tonumber(ARGV[4]) or ok >= tonumber(ARGV[5]) then
  return {now, 0}
end
if (tonumber(redis.call('HGET', KEYS[2], 'until')) or 0) > now then
  return {now, 0}
end
local until_ms = tonumber(ARGV[6])
if until_ms <= now then
  return {now, 0}
end
redis.call('HSET', KEYS[2], 'until', int(until_ms), 'reason', ARGV[7])
redis.call('PEXPIREAT', KEYS[2], int(until_ms))
return {now, until_ms}
