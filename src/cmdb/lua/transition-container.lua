--[[
  Moves a container entry from one of the expected states to a new one, applying a patch, as one
  compare-and-set. Moving to "gone" deletes the entry.

  KEYS[1]  container key
  KEYS[2]  all containers set
  KEYS[3]  revision counter
  KEYS[4]  changes channel

  ARGV[1]  container id
  ARGV[2]  expected states, comma separated
  ARGV[3]  new state
  ARGV[4]  patch JSON object (null values clear fields)
  ARGV[5]  app container set key prefix

  Returns the new container JSON, or nil when the entry is missing or in another state.
]]
local cjs = redis.call('GET', KEYS[1])
if not cjs then return nil end
local c = cjson.decode(cjs)
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == c.state then allowed = true end
end
if not allowed then return nil end
for k, v in pairs(cjson.decode(ARGV[4])) do
  c[k] = v
end
c.state = ARGV[3]
local rev = redis.call('INCR', KEYS[3])
c.rev = rev
local json = cjson.encode(c)
if ARGV[3] == 'gone' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('SREM', ARGV[5] .. c.app, ARGV[1])
  redis.call('PUBLISH', KEYS[4], '{"kind":"container","op":"delete","rev":' .. rev .. ',"id":' .. cjson.encode(ARGV[1]) .. ',"value":' .. json .. '}')
else
  redis.call('SET', KEYS[1], json)
  redis.call('PUBLISH', KEYS[4], '{"kind":"container","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
end
return json
