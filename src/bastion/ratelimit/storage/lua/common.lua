-- Prepended to every bastion rate-limit script when it is loaded (a Redis script cannot
-- include another). Time and durations are whole microseconds held in Lua's doubles, exact
-- below 2^53; the arithmetic mirrors bastion/ratelimit/algorithms.py operation for operation.

-- Python's a // b (floor division) for integers; a / b alone may round up across an integer.
local function fdiv(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    return q - 1
  elseif r >= b then
    return q + 1
  end
  return q
end

-- The caller's clock when it passed one (tests, an injected clock), else the server's, so that
-- every gateway instance agrees on time.
local function now_us(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- A positive duration in microseconds as whole milliseconds for PX / PEXPIRE, rounded up.
local function px(us)
  local ms = fdiv(us + 999, 1000)
  if ms < 1 then
    return 1
  end
  return ms
end

local function int(x)
  return string.format('%d', x)
end
