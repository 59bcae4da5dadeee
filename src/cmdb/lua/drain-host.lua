--[[
  Sets or clears a compute host's drain mark (`host drain` / `host undrain`): while set, no new
  containers are placed on the host and its dispatcher replaces its containers elsewhere.

  KEYS[1]  host key
  KEYS[2]  revision counter
  KEYS[3]  changes channel

  ARGV[1]  drainedAt: ms since the epoch, or "" to clear the mark

  Returns the stored host JSON, or nil when the host is unknown.
]]
local old = redis.call('GET', KEYS[1])
if not old then return nil end
local host = cjson.decode(old)
local rev = redis.call('INCR', KEYS[2])
host.rev = rev
if ARGV[1] == '' then host.drainedAt = cjson.null else host.drainedAt = tonumber(ARGV[1]) end
local json = cjson.encode(host)
redis.call('SET', KEYS[1], json)
redis.call('PUBLISH', KEYS[3], '{"kind":"host","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
return json
