--[[
  Deletes an app and releases its hostnames, its events and its log; its container entries that never
  started go, the others turn draining so their dispatchers drain and remove them. Atomic.

  KEYS[1]  app key
  KEYS[2]  apps set
  KEYS[3]  revision counter
  KEYS[4]  changes channel
  KEYS[5]  the app's container set
  KEYS[6]  all containers set
  KEYS[7]  the app's events list
  KEYS[8]  the app's recent log lines (its sequence number stays, so a follower's cursor stays valid)

  ARGV[1]  app name
  ARGV[2]  hostname key prefix
  ARGV[3]  container key prefix

  Returns the deleted app JSON, or an error "FC_ERR_APP_NOT_FOUND {...}".
]]
local old = redis.call('GET', KEYS[1])
if not old then
  return redis.error_reply('FC_ERR_APP_NOT_FOUND ' .. cjson.encode({ app = ARGV[1] }))
end
for _, h in ipairs(cjson.decode(old).hostnames) do
  local key = ARGV[2] .. h
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local ckey = ARGV[3] .. id
  local cjs = redis.call('GET', ckey)
  if cjs then
    local c = cjson.decode(cjs)
    local rev = redis.call('INCR', KEYS[3])
    c.rev = rev
    if c.state == 'registered' then
      c.state = 'gone'
      redis.call('DEL', ckey)
      redis.call('SREM', KEYS[5], id)
      redis.call('SREM', KEYS[6], id)
      redis.call('PUBLISH', KEYS[4], '{"kind":"container","op":"delete","rev":' .. rev .. ',"id":' .. cjson.encode(id) .. ',"value":' .. cjson.encode(c) .. '}')
    elseif c.state == 'starting' or c.state == 'ready' then
      c.state = 'draining'
      local encoded = cjson.encode(c)
      redis.call('SET', ckey, encoded)
      redis.call('PUBLISH', KEYS[4], '{"kind":"container","op":"put","rev":' .. rev .. ',"value":' .. encoded .. '}')
    end
  else
    redis.call('SREM', KEYS[5], id)
    redis.call('SREM', KEYS[6], id)
  end
end
redis.call('DEL', KEYS[1], KEYS[7], KEYS[8])
redis.call('SREM', KEYS[2], ARGV[1])
local rev = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', KEYS[4], '{"kind":"app","op":"delete","rev":' .. rev .. ',"id":' .. cjson.encode(ARGV[1]) .. ',"value":' .. old .. '}')
return old
