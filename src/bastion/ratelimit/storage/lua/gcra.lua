-- GCRA (token bucket) on one key holding the theoretical arrival time ``tat``.
-- KEYS[1] the key.  ARGV: cost, now ('' = Redis TIME), write ('1' hit, '0' peek),
-- interval, tolerance (burst * interval), capacity (burst), all in microseconds.
-- Returns {admitted 0/1, remaining, reset_after_us, retry_after_us (-1: never)}.
local cost = tonumber(ARGV[1])
local now = now_us(ARGV[2])
local interval = tonumber(ARGV[4])
local tolerance = tonumber(ARGV[5])
local capacity = tonumber(ARGV[6])

local tat = tonumber(redis.call('GET', KEYS[1]))
local base = now
if tat and tat > now then
  base = tat
end
local new = base + cost * interval
local allow_at = new - tolerance
if allow_at <= now and cost <= capacity then
  if ARGV[3] == '1' then
    redis.call('SET', KEYS[1], int(new), 'PX', px(new - now))
  end
  return {1, fdiv(now + tolerance - new, interval), new - now, 0}
end
local remaining = math.max(0, fdiv(now + tolerance - base, interval))
local retry = -1
if cost <= capacity then
  retry = allow_at - now
end
return {0, remaining, base - now, retry}
