--[[
  Appends an event to an app's list, newest first, keeping the newest ARGV[2], only while the app
  exists: steps that come after an app's deletion (its containers draining) do not bring its list
  back, so an app created again under the name starts with none.

  KEYS[1]  app key
  KEYS[2]  the app's events list

  ARGV[1]  event JSON
  ARGV[2]  how many events to keep
  ARGV[3]  time to live of the list, ms

  Returns 1 when appended, 0 when the app does not exist.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
