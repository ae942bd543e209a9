-- Sliding log on one list holding the timestamps of admitted hits, oldest first (a hit of
-- cost n appears n times).
-- KEYS[1] the key.  ARGV: cost, now ('' = Redis TIME), write ('1' hit, '0' peek),
-- period (microseconds), limit.
-- Returns {admitted 0/1, remaining, reset_after_us, retry_after_us (-1: never)}.
local cost = tonumber(ARGV[1])
local now = now_us(ARGV[2])
local period = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local write = ARGV[3] == '1'
local key = KEYS[1]

-- Count the expired entries at the head, reading it in growing slices (never one LINDEX per
-- entry: that is quadratic on a long list).
local horizon = now - period
local count = redis.call('LLEN', key)
local drop = 0
local slice = 16
while drop < count do
  local stamps = redis.call('LRANGE', key, drop, drop + slice - 1)
  local expired = 0
  for i = 1, #stamps do
    if tonumber(stamps[i]) > horizon then
      break
    end
    expired = i
  end
  drop = drop + expired
  if expired < #stamps or #stamps == 0 then
    break
  end
  slice = slice * 2
end
count = count - drop
-- The list index of the first live entry.
local first = drop
if write and drop > 0 then
  redis.call('LTRIM', key, drop, -1)
  first = 0
end

if count + cost <= limit then
  if write then
    local stamp = int(now)
    local left = cost
    while left > 0 do
      local batch = {}
      for i = 1, math.min(left, 1000) do
        batch[i] = stamp
      end
      redis.call('RPUSH', key, unpack(batch))
      left = left - #batch
    end
    redis.call('PEXPIRE', key, px(period))
  end
  return {1, limit - count - cost, period, 0}
end
local reset = 0
if count > 0 then
  reset = tonumber(redis.call('LINDEX', key, -1)) + period - now
end
local retry = -1
if cost <= limit then
  retry = tonumber(redis.call('LINDEX', key, first + count + cost - limit - 1)) + period - now
end
return {0, limit - count, reset, retry}
