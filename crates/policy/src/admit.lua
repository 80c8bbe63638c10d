-- Atomic admission over every scope: sliding-minute rate limits (per-second
-- buckets), parallel-request counters, and budget reservations. All or nothing.
-- ARGV: prefix, now_s, now_ms, tokens, n_limits, {scope, rpm, tpm, par}*,
--       n_budgets, {scope, period_start, limit}*, amount, reservation_id, reservation_expiry_ms
-- Limits of -1 mean "none".
local p = ARGV[1]
local now = tonumber(ARGV[2])
local now_ms = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
local lim = {}
local info = {-1, -1, 0, -1, -1, 0}
local tight_r, tight_t = math.huge, math.huge
for _ = 1, n do
  local scope, rpm, tpm, par = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local req, tok, oldest = 0, 0, nil
  for sec = now - 59, now do
    local r = tonumber(redis.call('GET', p .. ':rl:' .. scope .. ':r:' .. sec) or '0')
    local t = tonumber(redis.call('GET', p .. ':rl:' .. scope .. ':t:' .. sec) or '0')
    if r > 0 and oldest == nil then oldest = sec end
    req = req + r
    tok = tok + t
  end
  local reset = 1
  if oldest then reset = 60 - (now - oldest) end
  if rpm >= 0 then
    if rpm - req < tight_r then
      tight_r = rpm - req
      info[1] = rpm; info[2] = math.max(rpm - req - 1, 0); info[3] = reset
    end
    if req >= rpm then
      return {'limit', scope, 'requests per minute', rpm, reset, rpm, 0, reset, info[4], info[5], info[6]}
    end
  end
  if tpm >= 0 then
    if tpm - tok < tight_t then
      tight_t = tpm - tok
      info[4] = tpm; info[5] = math.max(tpm - tok - tokens, 0); info[6] = reset
    end
    if req > 0 and tok + tokens > tpm then
      return {'limit', scope, 'tokens per minute', tpm, reset, info[1], info[2], info[3], tpm, math.max(tpm - tok, 0), reset}
    end
  end
  if par >= 0 then
    -- Parallel slots are members with an expiry, so a slot whose settle never
    -- came (timeout, crashed replica) frees itself.
    local pk = p .. ':par:' .. scope
    redis.call('ZREMRANGEBYSCORE', pk, '-inf', now_ms)
    local inflight = redis.call('ZCARD', pk)
    if inflight >= par then
      return {'limit', scope, 'parallel requests', par, 1, info[1], info[2], info[3], info[4], info[5], info[6]}
    end
  end
  lim[#lim + 1] = scope
end
local nb = tonumber(ARGV[i]); i = i + 1
local amount_at = i + nb * 3
local amount = tonumber(ARGV[amount_at])
local rid = ARGV[amount_at + 1]
local rexp = tonumber(ARGV[amount_at + 2])
local bud = {}
for _ = 1, nb do
  local scope, pstart, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local key = p .. ':b:' .. scope .. ':' .. pstart
  if redis.call('EXISTS', key) == 0 then
    return {'load', scope, pstart}
  end
  local zkey = key .. ':r'
  -- Holds of replicas that died are dropped when they expire.
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now_ms)) do
    redis.call('HDEL', key, 'r:' .. m)
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now_ms)
  local reserved = 0
  for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    reserved = reserved + tonumber(redis.call('HGET', key, 'r:' .. m) or '0')
  end
  local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
  if limit >= 0 and spent + reserved + amount > limit then
    return {'budget', scope, limit, spent, reserved, amount}
  end
  bud[#bud + 1] = {key, zkey}
end
for _, scope in ipairs(lim) do
  local rk = p .. ':rl:' .. scope .. ':r:' .. now
  local tk = p .. ':rl:' .. scope .. ':t:' .. now
  redis.call('INCRBY', rk, 1); redis.call('EXPIRE', rk, 120)
  redis.call('INCRBY', tk, tokens); redis.call('EXPIRE', tk, 120)
  local pk = p .. ':par:' .. scope
  redis.call('ZADD', pk, rexp, rid); redis.call('PEXPIREAT', pk, rexp)
end
for _, b in ipairs(bud) do
  redis.call('HSET', b[1], 'r:' .. rid, amount)
  redis.call('ZADD', b[2], rexp, rid)
end
return {'ok', info[1], info[2], info[3], info[4], info[5], info[6]}
