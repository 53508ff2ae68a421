/**
 * The Redis engine's Lua scripts. Each touches the keys of ONE device only (all under the
 * device's hash tag), so each is atomic on a single Redis and on a Redis Cluster slot.
 *
 * Every script takes the device's four keys, in the order of Keys.device():
 *   KEYS[1] head   hash: seq (newest seq ever assigned; never deleted), ack (ackedSeq)
 *   KEYS[2] inbox  zset: score = seq, member = seq (decimal)
 *   KEYS[3] body   hash: seq -> push record bytes
 *   KEYS[4] exp    zset: score = expiresAt ms, member = seq (pushes that expire only)
 *
 * Seqs go into Redis as string.format('%d') decimals: Lua's default number-to-string
 * conversion (%.14g) would round seqs above 10^14. Scores are doubles, exact to 2^53,
 * which covers every safe integer the Store interface allows. Commands taking many seqs
 * are split into chunks of CHUNK, under Lua's unpack() limit (~8,000 values).
 */

export const SCRIPT_KEYS = 4;

const CHUNK = `
local CHUNK = 1000
local function each_chunk(list, fn)
  for i = 1, #list, CHUNK do
    fn({unpack(list, i, math.min(i + CHUNK - 1, #list))})
  end
end
`;

/**
 * ARGV: n, then n pairs (expiresAt, record). Returns the first seq; the batch got
 * first .. first + n - 1 in ARGV order. HINCRBY on a field that is never deleted is
 * what keeps seqs from ever repeating.
 */
export const APPEND_LUA = `
local n = tonumber(ARGV[1])
local last = redis.call('HINCRBY', KEYS[1], 'seq', n)
local first = last - n + 1
for i = 0, n - 1 do
  local seq = string.format('%d', first + i)
  local expires = ARGV[2 + 2 * i]
  redis.call('ZADD', KEYS[2], seq, seq)
  redis.call('HSET', KEYS[3], seq, ARGV[3 + 2 * i])
  if expires ~= '0' then redis.call('ZADD', KEYS[4], expires, seq) end
end
return first
`;

/**
 * ARGV: afterSeq, limit, nowMs. Returns {headSeq, more (0/1), seq1, record1, seq2, ...}:
 * unexpired pushes after afterSeq, oldest first, at most limit. Expired ones (expiresAt <=
 * now) are skipped here, not deleted: time is the caller's, and only sweeps delete.
 */
export const READ_LUA = `${CHUNK}
local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local limit = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local out = {head, 0}
if tonumber(ARGV[1]) >= head then return out end
local page_size = math.min(math.max(limit + 1, 64), CHUNK)
local min = '(' .. ARGV[1]
local seqs = {}
local more = 0
while more == 0 do
  local page = redis.call('ZRANGEBYSCORE', KEYS[2], min, '+inf', 'LIMIT', 0, page_size)
  for _, seq in ipairs(page) do
    local expires = redis.call('ZSCORE', KEYS[4], seq)
    if not expires or tonumber(expires) > now then
      if #seqs >= limit then
        more = 1
        break
      end
      seqs[#seqs + 1] = seq
    end
  end
  if #page < page_size then break end
  min = '(' .. page[#page]
end
out[2] = more
each_chunk(seqs, function(part)
  local records = redis.call('HMGET', KEYS[3], unpack(part))
  for j, seq in ipairs(part) do
    out[#out + 1] = seq
    out[#out + 1] = records[j]
  end
end)
return out
`;

/**
 * ARGV: upToSeq (a whole number, may exceed headSeq), then selective seqs (canonical
 * decimals). Deletes seq <= upToSeq and the listed ones, raises ack (capped at head,
 * never lowered). Returns how many pushes were deleted. No-op for an unknown device.
 */
export const ACK_LUA = `${CHUNK}
local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if head == 0 then return 0 end
local acked = tonumber(redis.call('HGET', KEYS[1], 'ack') or '0')
local up_to = math.min(tonumber(ARGV[1]), head)
local removed = 0
if up_to > acked then
  -- Everything <= acked is already gone, so the range starts after it.
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. string.format('%d', acked), string.format('%d', up_to))
  each_chunk(gone, function(part)
    redis.call('ZREM', KEYS[2], unpack(part))
    redis.call('HDEL', KEYS[3], unpack(part))
    redis.call('ZREM', KEYS[4], unpack(part))
  end)
  removed = #gone
  acked = up_to
  redis.call('HSET', KEYS[1], 'ack', string.format('%d', acked))
end
for i = 2, #ARGV do
  local s = tonumber(ARGV[i])
  -- Selective acks naming nothing we could hold are ignored: device input.
  if s > acked and s <= head and redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('ZREM', KEYS[4], ARGV[i])
    removed = removed + 1
  end
end
return removed
`;

/**
 * ARGV: nowMs, limit. Deletes up to limit pushes with expiresAt <= now. Returns
 * {removed, still due}: still due > 0 means the limit stopped it.
 */
export const SWEEP_LUA = `${CHUNK}
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local removed = 0
each_chunk(due, function(part)
  removed = removed + redis.call('ZREM', KEYS[2], unpack(part))
  redis.call('HDEL', KEYS[3], unpack(part))
  redis.call('ZREM', KEYS[4], unpack(part))
end)
return {removed, redis.call('ZCOUNT', KEYS[4], '-inf', ARGV[1])}
`;
