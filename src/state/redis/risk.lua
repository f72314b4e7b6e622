-- Counts one login's answer for risk's memory (`risk::memory`), shared by
-- every replica. KEYS: the tallies of the client and of its subnet (hashes:
-- s, f), then, when ARGV[3] is not 0, the username's mark that it logged in
-- here. ARGV[1]: the field to count, s or f; ARGV[2]: the window in ms,
-- which starts at a tally's first count and ends the key with it;
-- ARGV[3]: how long the mark lasts, in ms.
local tallies = #KEYS
if ARGV[3] ~= '0' then
  tallies = tallies - 1
  redis.call('SET', KEYS[#KEYS], 1, 'PX', ARGV[3])
end
for i = 1, tallies do
  redis.call('HINCRBY', KEYS[i], ARGV[1], 1)
  if redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return tallies
