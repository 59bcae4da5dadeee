--[[
  Records a host's usage reports: for each container, what its cumulative figures grew since its
  cursor (all of them when it has none) is added to its app's rollup of the current minute, and
  the cursor moves to the figures reported (a final report removes it). One script, so the
  rollup and the cursor never disagree: a report applied twice adds nothing the second time.

  KEYS[1]    the host's usage cursors (hash)
  KEYS[1+i]  the rollup hash of report i's app for the current hour

  ARGV[1]  now, ms (the reporter's clock; kept in the cursor)
  ARGV[2]  the current minute, ms (the rollup fields' prefix)
  ARGV[3]  time to live of the rollup hashes, ms
  ARGV[4]  F, the number of figures
  ARGV[5 … 4+F]  the figures' names
  then per report i: container id, app, final (0 or 1), F cumulative values (integers)

  Returns the number of reports applied.
]]
local F = tonumber(ARGV[4])
local names = {}
for f = 1, F do names[f] = ARGV[4 + f] end
local per = 3 + F
local base = 4 + F
local n = (#ARGV - base) / per
local function split(s, sep)
  local out = {}
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end
for i = 1, n do
  local o = base + (i - 1) * per
  local id, app, final = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
  local old = redis.call('HGET', KEYS[1], id)
  local prev = nil
  if old then
    local parts = split(old, '\n')
    -- A cursor of another app (an id reused) is not this container's.
    if parts[1] == app and parts[3] then prev = split(parts[3], ',') end
  end
  local kept = {}
  local grew = false
  for f = 1, F do
    local v = tonumber(ARGV[o + 3 + f])
    local p = prev and tonumber(prev[f]) or 0
    local d = v - p
    if d > 0 then
      redis.call('HINCRBY', KEYS[1 + i], ARGV[2] .. ':' .. names[f], d)
      grew = true
      kept[f] = ARGV[o + 3 + f]
    else
      -- Figures only grow: a lower one (a counter read short) keeps the cursor where it was.
      kept[f] = prev and prev[f] or ARGV[o + 3 + f]
    end
  end
  if grew then redis.call('PEXPIRE', KEYS[1 + i], ARGV[3]) end
  if final == '1' then
    redis.call('HDEL', KEYS[1], id)
  else
    redis.call('HSET', KEYS[1], id, app .. '\n' .. ARGV[1] .. '\n' .. table.concat(kept, ','))
  end
end
return n
