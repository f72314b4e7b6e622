-- Lifts a ban, in the slot of its target. KEYS[1] the target's ban, and for
-- an address KEYS[2], its suspicion hash (its place on the ladder stays).
-- Returns 1 if there was a ban.
if KEYS[2] then
  redis.call('HDEL', KEYS[2], 'until')
end
return redis.call('DEL', KEYS[1])
