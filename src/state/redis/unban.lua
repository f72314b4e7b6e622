-- Lifts a ban, in the slot of its target. KEYS[1] the target's ban, and
-- KEYS[2]: for a client (ARGV[1] 'client'), its suspicion hash (its place on
-- the ladder stays); for a network ('net'), its escalation record (so that
-- the next ban of one of its addresses does not ban it again at once).
-- Returns 1 if there was a ban.
if ARGV[1] == 'client' then
  redis.call('HDEL', KEYS[2], 'until')
else
  redis.call('DEL', KEYS[2])
end
return redis.call('DEL', KEYS[1])
