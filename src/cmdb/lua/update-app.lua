--[[
  Replaces an app's spec, releasing hostnames it no longer has and claiming new ones, atomically.
  The creation time is kept from the stored app.

  KEYS[1]  app key
  KEYS[2]  revision counter
  KEYS[3]  changes channel
  KEYS[4..] one hostname key per hostname of the new spec

  ARGV[1]  app name
  ARGV[2]  app JSON (an object without "rev" and "createdAt")
  ARGV[3]  hostname key prefix (the old spec's hostnames are only known once it is read here)

  Returns the stored app JSON, or an error "FC_ERR_APP_NOT_FOUND {...}" / "FC_ERR_HOSTNAME_TAKEN {...}".
]]
local old = redis.call('GET', KEYS[1])
if not old then
  return redis.error_reply('FC_ERR_APP_NOT_FOUND ' .. cjson.encode({ app = ARGV[1] }))
end
for i = 4, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[1] then
    return redis.error_reply('FC_ERR_HOSTNAME_TAKEN ' .. cjson.encode({ key = KEYS[i], app = owner }))
  end
end
local previous = cjson.decode(old)
local keep = {}
for i = 4, #KEYS do keep[KEYS[i]] = true end
for _, h in ipairs(previous.hostnames) do
  local key = ARGV[3] .. h
  if not keep[key] and redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
local rev = redis.call('INCR', KEYS[2])
local json = '{"rev":' .. rev .. ',"createdAt":' .. string.format('%d', previous.createdAt) .. ',' .. string.sub(ARGV[2], 2)
redis.call('SET', KEYS[1], json)
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1])
end
redis.call('PUBLISH', KEYS[3], '{"kind":"app","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
return json
