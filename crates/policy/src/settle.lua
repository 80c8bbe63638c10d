-- Settles one admission: reconciles the token estimate, frees the parallel
-- slot, turns the budget hold into the actual cost.
-- ARGV: prefix, now_s, token_delta, n_limits, scope*, n_budgets, {scope, period_start}*, reservation_id, actual
-- Returns {spent_before, spent_after}* per budget.
local p = ARGV[1]
local now = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local scope = ARGV[i]; i = i + 1
  if delta ~= 0 then
    local tk = p .. ':rl:' .. scope .. ':t:' .. now
    redis.call('INCRBY', tk, delta); redis.call('EXPIRE', tk, 120)
  end
  local pk = p .. ':par:' .. scope
  if tonumber(redis.call('GET', pk) or '0') > 0 then redis.call('DECR', pk) end
end
local nb = tonumber(ARGV[i]); i = i + 1
local rid = ARGV[i + nb * 2]
local actual = tonumber(ARGV[i + nb * 2 + 1])
local out = {}
for _ = 1, nb do
  local key = p .. ':b:' .. ARGV[i] .. ':' .. ARGV[i + 1]
  i = i + 2
  redis.call('HDEL', key, 'r:' .. rid)
  redis.call('ZREM', key .. ':r', rid)
  local before = tonumber(redis.call('HGET', key, 'spent') or '0')
  local after = redis.call('HINCRBY', key, 'spent', actual)
  out[#out + 1] = before
  out[#out + 1] = after
end
return out
