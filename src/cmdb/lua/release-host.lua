--[[
  Gives up a host id's lease, only if this owner holds it (compare-and-delete).

  KEYS[1]  the host's lease key

  ARGV[1]  owner token

  Returns 1 if it was released, else 0.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
