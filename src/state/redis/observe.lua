-- Adds one attempt to a client's two window buckets (the same sliding
-- window as reputation.rs) and returns them; the verdict is Rust's.
-- KEYS[1] the client's suspicion hash.
-- ARGV: window_ms, failed (0/1), leaked-pair username bit (0-31, or -1 when
-- the pair is not leaked), username bit (0-63), ban_memory_ms.
-- Returns {now_ms, since_ms, attempts, failures, leaked, users_lo, users_hi,
-- the same five for the previous bucket, bans, banned_until_ms}.
local now = math.floor(clock_us() / 1000)
local fields = {'since', 'a', 'f', 'l', 'ulo', 'uhi', 'pa', 'pf', 'pl', 'plo', 'phi', 'bans', 'until'}
local raw = redis.call('HMGET', KEYS[1], unpack(fields))
local n = {}
for i = 1, #fields do
  n[i] = tonumber(raw[i]) or 0
end
if not raw[1] then
  n[1] = now
end
local window = tonumber(ARGV[1])
local elapsed = now - n[1]
if elapsed >= window then
  for i = 2, 6 do
    if elapsed < 2 * window then n[i + 5] = n[i] else n[i + 5] = 0 end
    n[i] = 0
  end
  n[1] = now
end
n[2] = n[2] + 1
n[3] = n[3] + tonumber(ARGV[2])
local leaked = tonumber(ARGV[3])
if leaked >= 0 then
  n[4] = bit.bor(n[4], bit.lshift(1, leaked))
end
local b = tonumber(ARGV[4])
if b < 32 then
  n[5] = bit.bor(n[5], bit.lshift(1, b))
else
  n[6] = bit.bor(n[6], bit.lshift(1, b - 32))
end
local flat = {}
for i = 1, #fields do
  flat[2 * i - 1] = fields[i]
  flat[2 * i] = int(n[i])
end
redis.call('HSET', KEYS[1], unpack(flat))
local ttl = 2 * window
if n[13] > 0 then
  ttl = math.max(ttl, n[13] + tonumber(ARGV[5]) - now)
end
redis.call('PEXPIRE', KEYS[1], int(math.max(ttl, 1)))
local reply = {now}
for i = 1, #fields do
  reply[i + 1] = n[i]
end
return reply
