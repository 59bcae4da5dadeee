--[[
  Reads the CMDB's epoch and revision; writes the epoch when it is missing (the first use of this
  CMDB, or the first call after it lost its data), so every caller agrees on one epoch.

  KEYS[1]  epoch key
  KEYS[2]  revision counter

  ARGV[1]  a fresh random epoch, used only when none is stored

  Returns { epoch, revision as a string }.
]]
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
return { epoch, redis.call('GET', KEYS[2]) or '0' }
