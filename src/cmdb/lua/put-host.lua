--[[
  Registers or renews a compute host (its heartbeat). The operator's drain mark (drainedAt) of
  the stored record is kept: the dispatcher's JSON never carries it.

  KEYS[1]  host key
  KEYS[2]  hosts set
  KEYS[3]  revision counter
  KEYS[4]  changes channel

  ARGV[1]  host id
  ARGV[2]  host JSON (an object without "rev")

  Returns the stored host JSON.
]]
local body = string.sub(ARGV[2], 2)
local old = redis.call('GET', KEYS[1])
if old then
  local drainedAt = cjson.decode(old).drainedAt
  if type(drainedAt) == 'number' then body = '"drainedAt":' .. cjson.encode(drainedAt) .. ',' .. body end
end
local rev = redis.call('INCR', KEYS[3])
local json = '{"rev":' .. rev .. ',' .. body
redis.call('SET', KEYS[1], json)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[4], '{"kind":"host","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
return json
