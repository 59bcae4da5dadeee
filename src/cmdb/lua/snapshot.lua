--[[
  Reads the whole CMDB at one revision, for a cache to start from or resync to.

  KEYS[1]  revision counter
  KEYS[2]  apps set
  KEYS[3]  all containers set
  KEYS[4]  hosts set

  ARGV[1]  app key prefix
  ARGV[2]  container key prefix
  ARGV[3]  host key prefix

  Returns { rev, { app JSON... }, { container JSON... }, { host JSON... } }.
]]
local function read(set, prefix)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    local js = redis.call('GET', prefix .. id)
    if js then out[#out + 1] = js end
  end
  return out
end
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
return { rev, read(KEYS[2], ARGV[1]), read(KEYS[3], ARGV[2]), read(KEYS[4], ARGV[3]) }
