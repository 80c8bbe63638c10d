-- Settles one admission: reconciles the token estimate, frees the parallel
-- slot, turns the budget hold into the actual cost.
-- ARGV: prefix, admit_s, token_delta, n_limits, scope*, n_budgets, {scope, period_start}*, reservation_id, actual
-- The token delta goes into the second the estimate was counted in.
-- Returns {spent_before, spent_after}* per budget.
local p = ARGV[1]
local now = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local scope = ARGV[i]; i = i + 1
  local tk = p .. ':rl:' .. scope .. ':t:' .. now
  if delta ~= 0 and redis.call('EXISTS', tk) == 1 then
    redis.call('INCRBY', tk, delta)
  end
end
local nb = tonumber(ARGV[i]); i = i + 1
local rid = ARGV[i + nb * 2]
local actual = tonumber(ARGV[i + nb * 2 + 1])
for j = 5, 4 + n do
  redis.call('ZREM', p .. ':par:' .. ARGV[j], rid)
end
local out = {}
for _ = 1, nb do
  local key = p .. ':b:' .. ARGV[i] .. ':' .. ARGV[i + 1]
  i = i + 2
  redis.call('HDEL', key, 'r:' .. rid)
  redis.call('ZREM', key .. ':r', rid)
  -- A key lost (eviction, restart) is not recreated here: the next admission
  -- reloads the period's spend from the request log instead.
  if redis.call('EXISTS', key) == 1 then
    local before = tonumber(redis.call('HGET', key, 'spent') or '0')
    local after = redis.call('HINCRBY', key, 'spent', actual)
    out[#out + 1] = before
    out[#out + 1] = after
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
