-- Sliding window counter on one key holding 'start:previous:current' (the current window's
-- start and the counts of the previous and current windows), so that one key, in one cluster
-- slot, carries both windows.
-- KEYS[1] the key.  ARGV: cost, now ('' = Redis TIME), write ('1' hit, '0' peek),
-- period (microseconds), limit.
-- Returns {admitted 0/1, remaining, reset_after_us, retry_after_us (-1: never)}.
local cost = tonumber(ARGV[1])
local now = now_us(ARGV[2])
local period = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])

local start = fdiv(now, period) * period
local previous, current = 0, 0
local state = redis.call('GET', KEYS[1])
if state then
  local s, p, c = string.match(state, '^(-?%d+):(%d+):(%d+)$')
  s = tonumber(s)
  if s == start then
    previous, current = tonumber(p), tonumber(c)
  elseif s == start - period then
    previous = tonumber(c)
  end
end

-- The least elapsed time in a window at which ``prev``'s weighted share fits in ``room``:
-- ceil(prev * (P - e) / P) <= room; P (the window's end) when room is 0.
local function earliest(prev, room)
  if prev == 0 then
    return 0
  end
  return math.max(0, period - fdiv(room * period, prev))
end

-- Microseconds until the estimate is 0: the previous window's share vanishes at the end of the
-- current window, the current window's at the end of the next one.
local function reset_after()
  if current ~= 0 then
    return start + 2 * period - now
  end
  if previous ~= 0 then
    return start + period - now
  end
  return 0
end

-- ceil(previous * (P - e) / P): admitted exactly when the fractional estimate is, as the limit
-- and the cost are whole.
local estimate = current - fdiv(-previous * (start + period - now), period)
if estimate + cost <= limit then
  current = current + cost
  if ARGV[3] == '1' then
    local value = int(start) .. ':' .. int(previous) .. ':' .. int(current)
    redis.call('SET', KEYS[1], value, 'PX', px(start + 2 * period - now))
  end
  return {1, limit - estimate - cost, reset_after(), 0}
end
local retry
if cost > limit then
  retry = -1
elseif current + cost <= limit then
  retry = start + earliest(previous, limit - current - cost) - now
else
  -- Not in this window: in the next one, this window's count becomes the previous one.
  local later = earliest(current, limit - cost)
  if later < period then
    retry = start + period + later - now
  else
    retry = start + 2 * period - now
  end
end
return {0, math.max(0, limit - estimate), reset_after(), retry}
