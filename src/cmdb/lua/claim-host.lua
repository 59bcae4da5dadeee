--[[
  Claims a host id for an owner, or renews the owner's claim (compare-and-renew): a dispatcher
  does this before it touches anything, and again with every heartbeat.

  KEYS[1]  the host's lease key

  ARGV[1]  owner token (random per dispatcher process)
  ARGV[2]  lease time, ms

  Returns { 1 } when the owner holds the lease now, else { 0, other owner, its ms left }.
]]
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return { 1 }
end
return { 0, owner, redis.call('PTTL', KEYS[1]) }
