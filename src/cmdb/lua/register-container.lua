--[[
  Adds a container entry for an app, within the app's maxContainers plus a surge, atomically.
  With a fewer-than count it adds one only when the app has fewer live entries than that, and
  otherwise returns one of the live ones (ready first), so that many proxies racing on a first
  request create one entry. The surge lets a replacement of an expiring container be made before
  the old one is broken (drained).

  KEYS[1]  app key
  KEYS[2]  the app's container set
  KEYS[3]  all containers set
  KEYS[4]  the new container's key
  KEYS[5]  revision counter
  KEYS[6]  changes channel

  ARGV[1]  container id
  ARGV[2]  container JSON (an object without "rev")
  ARGV[3]  fewer-than count, or "0" for none
  ARGV[4]  container key prefix
  ARGV[5]  surge: how many entries beyond maxContainers are allowed, "0" for none
  ARGV[6]  JSON array of host ids whose entries neither count nor are returned (hosts the caller
           judges not live), "[]" or absent for none

  Returns { created (1 or 0), container JSON }, or an error "FC_ERR_APP_NOT_FOUND {...}" /
  "FC_ERR_MAX_CONTAINERS {...}".
]]
local appjs = redis.call('GET', KEYS[1])
if not appjs then
  return redis.error_reply('FC_ERR_APP_NOT_FOUND ' .. cjson.encode({ app = cjson.decode(ARGV[2]).app }))
end
local app = cjson.decode(appjs)
local ignored = {}
if ARGV[6] and ARGV[6] ~= '' then
  for _, h in ipairs(cjson.decode(ARGV[6])) do ignored[h] = true end
end
local live = 0
local best, bestRank, bestCreated = nil, 99, nil
local rank = { ready = 1, starting = 2, registered = 3 }
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local cjs = redis.call('GET', ARGV[4] .. id)
  if cjs then
    local c = cjson.decode(cjs)
    local r = rank[c.state]
    if r and not ignored[c.host] then
      live = live + 1
      -- Ready first, then starting, then registered; the oldest among equals.
      if r < bestRank or (r == bestRank and c.createdAt < bestCreated) then
        best, bestRank, bestCreated = cjs, r, c.createdAt
      end
    end
  end
end
local fewerThan = tonumber(ARGV[3])
if fewerThan > 0 and live >= fewerThan and best then
  return { 0, best }
end
local surge = tonumber(ARGV[5]) or 0
if live >= app.maxContainers + surge then
  return redis.error_reply('FC_ERR_MAX_CONTAINERS ' .. cjson.encode({ app = app.name, live = live, maxContainers = app.maxContainers, surge = surge }))
end
local rev = redis.call('INCR', KEYS[5])
local json = '{"rev":' .. rev .. ',' .. string.sub(ARGV[2], 2)
redis.call('SET', KEYS[4], json)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PUBLISH', KEYS[6], '{"kind":"container","op":"put","rev":' .. rev .. ',"value":' .. json .. '}')
return { 1, json }
