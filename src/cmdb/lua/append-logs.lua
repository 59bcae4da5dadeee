--[[
  Appends log lines to an app's recent log, newest first, keeping the newest ARGV[1], only while
  the app exists (a deleted app's draining containers do not bring its log back). Each line gets
  the app's next sequence number, stored in front of it: "<seq> <json>".

  KEYS[1]  app key
  KEYS[2]  the app's log list
  KEYS[3]  the app's log sequence number

  ARGV[1]  how many lines to keep
  ARGV[2]  time to live of the list and the number, ms
  ARGV[3…] the lines, as JSON, oldest first

  Returns the app's newest sequence number, 0 when the app does not exist.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = #ARGV - 2
if n <= 0 then return tonumber(redis.call('GET', KEYS[3]) or '0') end
local last = redis.call('INCRBY', KEYS[3], n)
local first = last - n + 1
for i = 1, n do
  redis.call('LPUSH', KEYS[2], (first + i - 1) .. ' ' .. ARGV[i + 2])
end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return last
