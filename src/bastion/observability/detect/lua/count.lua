-- Window counts from every instance. KEYS[1] the window's hash; ARGV[1] its lifetime in
-- milliseconds; then pairs (field, this instance's increment). Returns the totals, in order.
local totals = {}
for i = 2, #ARGV, 2 do
  totals[#totals + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return totals
