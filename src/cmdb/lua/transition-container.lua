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
  ARGV[6]  guard: only while the app has more ready entries than this (counting this one); "-1" for none
  ARGV[7]  container key prefix (read only with a guard)

  Returns the new container JSON, or nil when the entry is missing or in another state, or when
  the guard does not hold.
]]
local cjs = redis.call('GET', KEYS[1])
if not cjs then return nil end
local c = cjson.decode(cjs)
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == c.state then allowed = true end
end
if not allowed then return nil end
local above = tonumber(ARGV[6] or '-1')
if above >= 0 then
  local ready = 0
  for _, id in ipairs(redis.call('SMEMBERS', ARGV[5] .. c.app)) do
    local ojs = redis.call('GET', ARGV[7] .. id)
    if ojs and cjson.decode(ojs).state == 'ready' then ready = ready + 1 end
  end
  if ready <= above then return nil end
end
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
