-- Distinct members of one counting window (credential stuffing: accounts per source, sources
-- per account). KEYS[1] the window's set; ARGV[1] the member, ARGV[2] the window's lifetime in
-- milliseconds, ARGV[3] the cap (members beyond it are not stored: the threshold is reached).
-- Returns the distinct count.
local count = redis.call('SCARD', KEYS[1])
if count < tonumber(ARGV[3]) then
  if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    count = count + 1
  end
  if count == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return count
