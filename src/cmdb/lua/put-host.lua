--[[
  Registers or renews a compute host (its heartbeat).

  KEYS[1]  host key
  KEYS[2]  hosts set
  KEYS[3]  revision counter
  KEYS[4]  changes channel

  ARGV[1]  host id
  ARGV[2]  host JSON (an object without "rev")

  Returns the stored host JSON.
]]
local rev = redis.call('INCR', KEYS[3])
local json = '{"rev":' .. rev .. ',' .. string.sub(ARGV[2], 2)
redis.call('SET', KEYS[1], json)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[4], '{"kind":"host","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
return json
