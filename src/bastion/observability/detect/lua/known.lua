-- The countries a consumer was seen from. KEYS[1] the consumer's set; ARGV[1] the country,
-- ARGV[2] how long (milliseconds) the set is kept after its last change, ARGV[3] the cap.
-- Returns {added (1 or 0), count before the add}.
local before = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return {0, before}
end
if before >= tonumber(ARGV[3]) then
  redis.call('SPOP', KEYS[1])
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, before}
