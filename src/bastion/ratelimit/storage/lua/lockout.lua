-- Failed attempts with lockout (login and token endpoints), as MemoryLockout counts them, in
-- float seconds (values travel as '%.17g' text, which round-trips a double exactly).
-- KEYS[1] a hash {until, last, streak}: the lock's end, the last failure, the lockout streak.
-- KEYS[2] a list: the times of the failures in the window, oldest first.
-- Both keys share one hash tag (one cluster slot).
-- ARGV: operation ('locked_for', 'failure', 'success'), now ('' = Redis TIME), window,
-- forget_after (window + ceiling), max_failures, base, ceiling.
-- Returns: locked_for, the seconds left of the lock; failure, the lockout it started (0: none);
-- success, 0.
local state, failures = KEYS[1], KEYS[2]
local op = ARGV[1]
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x)
  return string.format('%.17g', x)
end

local fields = redis.call('HMGET', state, 'until', 'last', 'streak')
local locked_until = tonumber(fields[1]) or -math.huge

if op == 'locked_for' then
  local left = locked_until - now
  if left > 0 then
    return fmt(left)
  end
  return '0'
end

if op == 'success' then
  -- Forget the failures and the streak, but never lift a running lock.
  redis.call('DEL', failures)
  if locked_until > now then
    redis.call('HSET', state, 'streak', '0')
  else
    redis.call('DEL', state)
  end
  return 0
end

-- A failure; one while locked counts for nothing.
if locked_until > now then
  return '0'
end
local window = tonumber(ARGV[3])
local forget_after = tonumber(ARGV[4])
local max_failures = tonumber(ARGV[5])
local last = tonumber(fields[2]) or -math.huge
local streak = tonumber(fields[3]) or 0
if last + forget_after <= now then
  streak = 0
end
local horizon = now - window
local times = redis.call('LRANGE', failures, 0, -1)
local drop = 0
for i = 1, #times do
  if tonumber(times[i]) > horizon then
    break
  end
  drop = i
end
if drop > 0 then
  redis.call('LTRIM', failures, drop, -1)
end
local count = #times - drop + 1
-- Each key lives as long as it matters: failures for the window, the streak (and the lock,
-- which never outlasts it) for window + ceiling after the last failure.
local keep_state = math.max(1, math.ceil(forget_after * 1000))
if count < max_failures then
  redis.call('RPUSH', failures, fmt(now))
  redis.call('PEXPIRE', failures, math.max(1, math.ceil(window * 1000)))
  redis.call('HSET', state, 'last', fmt(now), 'streak', string.format('%d', streak))
  redis.call('PEXPIRE', state, keep_state)
  return '0'
end
redis.call('DEL', failures)
streak = streak + 1
local duration = math.min(tonumber(ARGV[6]) * 2 ^ math.min(streak - 1, 62), tonumber(ARGV[7]))
redis.call(
  'HSET', state, 'until', fmt(now + duration), 'last', fmt(now),
  'streak', string.format('%d', streak)
)
redis.call('PEXPIRE', state, keep_state)
return fmt(duration)
