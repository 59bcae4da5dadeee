--[[
  Removes a compute host (its dispatcher stopped for good).

  KEYS[1]  host key
  KEYS[2]  hosts set
  KEYS[3]  revision counter
  KEYS[4]  changes channel

  ARGV[1]  host id

  Returns 1 if it existed, else 0.
]]
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
local rev = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', KEYS[4], '{"kind":"host","op":"delete","rev":' .. rev .. ',"id":' .. cjson.encode(ARGV[1]) .. ',"value":' .. old .. '}')
return 1
