-- GCRA (the token bucket as a theoretical arrival time), atomic in Redis.
-- KEYS[1]: the budget; ARGV[1]: microseconds per request; ARGV[2]: burst.
-- Returns 1 when admitted, 0 when not. Redis' clock is the one clock every node shares.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local per = tonumber(ARGV[1])
local tolerance = per * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + per
if next_tat - now > tolerance then
  return 0
end
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return 1
