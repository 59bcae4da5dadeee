--[[
  Creates an app and claims its hostnames, atomically.

  KEYS[1]  app key
  KEYS[2]  apps set
  KEYS[3]  revision counter
  KEYS[4]  changes channel
  KEYS[5..] one hostname key per hostname of the app

  ARGV[1]  app name
  ARGV[2]  app JSON (an object without "rev")

  Returns the stored app JSON, or an error "FC_ERR_APP_EXISTS {...}" / "FC_ERR_HOSTNAME_TAKEN {...}".
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('FC_ERR_APP_EXISTS ' .. cjson.encode({ app = ARGV[1] }))
end
for i = 5, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[1] then
    return redis.error_reply('FC_ERR_HOSTNAME_TAKEN ' .. cjson.encode({ key = KEYS[i], app = owner }))
  end
end
local rev = redis.call('INCR', KEYS[3])
local json = '{"rev":' .. rev .. ',' .. string.sub(ARGV[2], 2)
redis.call('SET', KEYS[1], json)
redis.call('SADD', KEYS[2], ARGV[1])
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], ARGV[1])
end
redis.call('PUBLISH', KEYS[4], '{"kind":"app","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
return json
