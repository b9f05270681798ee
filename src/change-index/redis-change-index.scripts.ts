/** One time mark per this many ms: the precision of trimming by age. */
export const MARK_EVERY_MS = 1000;

/**
 * Lua for RedisChangeIndex. Every script checks `meta` first: a missing meta hash means the
 * generation was lost (flush, restart, failover), which must surface, never read as "empty".
 *
 * Key layout under the prefix p: `${p}meta` hash {generation, position, readerXid, readerId, floor,
 * forgot (the forget line: no feed keeps a floor of its own at or below it)},
 * `${p}feed:<name>` sorted set (member = resource id, score = position), `${p}oldest` sorted set
 * (member = feed name, score = at most the position of its oldest indexed change: trim's work
 * list), `${p}floors` hash (feed name -> highest position of that feed removed by trim), `${p}gone`
 * sorted set (member = feed name, score = its floor: feeds with no indexed change that still keep
 * their floor, until the forget line passes it), `${p}marks` sorted set (member = position, score =
 * epoch ms it was written; about one per second, kept down to the forget line). A feed with no
 * indexed change answers with the index floor as position; its floor is its own while it is in
 * `gone`, else the forget line.
 *
 * append, trim and startGeneration derive feed keys from the prefix (ARGV[1]): Redis Cluster safe
 * only because the prefix carries a hash tag there, putting every key of the index in one slot.
 * Scripts that may visit many feeds (trim, startGeneration) work in bounded steps.
 * Numbers are written with %.0f: Lua's default tostring (%.14g) would round large positions.
 */

/**
 * KEYS: meta, oldest, floors, marks, gone. ARGV: prefix, generation, expectedPosition, readerXid,
 * readerId, writtenAt (epoch ms), then feed, resourceId pairs. Returns {'lost'} | {'conflict'} |
 * {'ok', generation, position, readerXid, readerId, floor}.
 */
export const APPEND_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'generation', 'position', 'floor', 'forgot')
if not meta[1] or meta[1] ~= ARGV[2] then return {'lost'} end
if tonumber(meta[2]) ~= tonumber(ARGV[3]) then return {'conflict'} end
local floor = meta[3] or '0'
local forgot = meta[4] or floor
local position = tonumber(meta[2])
local seen = {}
for i = 7, #ARGV, 2 do
  local feed = ARGV[i]
  position = position + 1
  local at = string.format('%.0f', position)
  redis.call('ZADD', ARGV[1] .. 'feed:' .. feed, 'GT', at, ARGV[i + 1])
  if not seen[feed] then
    seen[feed] = true
    -- A feed (re-)entering the index keeps the floor it still has (in gone); otherwise it may
    -- have had changes at or below the forget line: its floor starts there.
    if redis.call('ZADD', KEYS[2], 'NX', at, feed) == 1 and redis.call('ZREM', KEYS[5], feed) == 0
      and tonumber(forgot) > 0 then
      redis.call('HSET', KEYS[3], feed, forgot)
    end
  end
end
local head = string.format('%.0f', position)
if position > tonumber(meta[2]) then
  local writtenAt = tonumber(ARGV[6])
  local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
  if last[2] and writtenAt - tonumber(last[2]) < ${MARK_EVERY_MS} then
    redis.call('ZREM', KEYS[4], last[1])
    redis.call('ZADD', KEYS[4], last[2], head)
  else
    redis.call('ZADD', KEYS[4], string.format('%.0f', writtenAt), head)
  end
end
redis.call('HSET', KEYS[1], 'position', head, 'readerXid', ARGV[4], 'readerId', ARGV[5])
return {'ok', meta[1], head, ARGV[4], ARGV[5], floor}
`;

/**
 * Shared prologue of the per-feed reads. KEYS: meta, feed key, floors. ARGV[1]: feed name.
 * Leaves meta, feedMax and feedFloor in locals.
 */
const READ_FEED = `
local meta = redis.call('HMGET', KEYS[1], 'generation', 'position', 'floor', 'forgot')
if not meta[1] then return {'unavailable'} end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local own = redis.call('HGET', KEYS[3], ARGV[1])
local feedFloor
local feedMax
if top[2] then
  feedFloor = tonumber(own or '0')
  feedMax = math.max(feedFloor, tonumber(top[2]))
else
  -- No indexed change: none after the index floor. A cursor at or above the feed's own floor,
  -- or without one the forget line, missed nothing.
  feedMax = tonumber(meta[3] or '0')
  feedFloor = tonumber(own or meta[4] or meta[3] or '0')
end
`;

/** KEYS: meta, feed key, floors. ARGV: feed. Returns {'unavailable'} | {'position', gen, pos, floor}. */
export const FEED_POSITION_SCRIPT = `${READ_FEED}
return {'position', meta[1], string.format('%.0f', feedMax), string.format('%.0f', feedFloor)}
`;

/**
 * KEYS: meta, feed key, floors. ARGV: feed, generation, position, limit.
 * Returns {'unavailable'} | {'refetch', reason, generation, feedMax}
 * | {'changes', generation, feedMax, {member, score, ...}}.
 */
export const CHANGES_SINCE_SCRIPT = `${READ_FEED}
local feedMaxText = string.format('%.0f', feedMax)
if meta[1] ~= ARGV[2] then return {'refetch', 'generation', meta[1], feedMaxText} end
local position = tonumber(ARGV[3])
if position < feedFloor then return {'refetch', 'trimmed', meta[1], feedMaxText} end
if position > tonumber(meta[2]) then return {'refetch', 'ahead', meta[1], feedMaxText} end
local rows = redis.call('ZRANGE', KEYS[2], '(' .. ARGV[3], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[4], 'WITHSCORES')
return {'changes', meta[1], feedMaxText, rows}
`;

/** KEYS: id. ARGV: candidate. Stores the candidate unless an id is stored; returns the id. */
export const CLAIM_ID_SCRIPT = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`;

/**
 * One bounded step of starting a generation. KEYS: meta, oldest, floors, marks, gone. ARGV:
 * prefix, generation, readerXid, readerId, budget. The old generation ends at the first step (meta
 * goes: reads answer unavailable, a stale leader's appends are lost); each step unlinks up to
 * `budget` feeds of the work list. The last one drops the other structures (UNLINK: freed off the
 * main thread) and starts at position 0 with the reader checkpoint where the generation begins in
 * the change log. Returns 0 while feeds remain (call again), 1 when the generation has started.
 */
export const START_GENERATION_SCRIPT = `
redis.call('DEL', KEYS[1])
local feeds = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[5]) - 1)
for _, feed in ipairs(feeds) do
  redis.call('UNLINK', ARGV[1] .. 'feed:' .. feed)
  redis.call('ZREM', KEYS[2], feed)
end
if #feeds >= tonumber(ARGV[5]) then return 0 end
redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[1], 'generation', ARGV[2], 'position', '0', 'readerXid', ARGV[3], 'readerId', ARGV[4], 'floor', '0', 'forgot', '0')
return 1
`;

/**
 * One bounded step of a trim. KEYS: meta, oldest, floors, marks, gone. ARGV: prefix, position,
 * forget, budget. Raises meta.floor to the position (clamped to the head) and meta.forgot to
 * `forget` (clamped to the floor) first, then drops marks at or below the forget line and works
 * through the feeds whose oldest change is at or below the floor, spending one unit per feed
 * visited and per member, mark or floor removed: a feed keeps its highest removed position as its
 * floor; once empty it moves to `gone`, and leaves every structure when the forget line passes
 * its floor. Returns 1 while work remains (call again), 0 when done.
 */
export const TRIM_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'position', 'floor', 'forgot')
if not meta[1] then return 0 end
local floor = tonumber(meta[2] or '0')
local upTo = math.min(tonumber(ARGV[2]), tonumber(meta[1]))
if upTo > floor then
  floor = upTo
  redis.call('HSET', KEYS[1], 'floor', string.format('%.0f', floor))
end
-- An index without a forget line (written before there was one) forgot everything below its floor.
local forgot = tonumber(meta[3] or meta[2] or '0')
local forgetTo = math.min(tonumber(ARGV[3]), floor)
if forgetTo > forgot then forgot = forgetTo end
if not meta[3] or forgot > tonumber(meta[3]) then
  redis.call('HSET', KEYS[1], 'forgot', string.format('%.0f', forgot))
end
local bound = string.format('%.0f', floor)
local forgotText = string.format('%.0f', forgot)
local budget = tonumber(ARGV[4])
local marks = redis.call('ZRANGE', KEYS[4], 0, budget - 1)
for _, mark in ipairs(marks) do
  if tonumber(mark) > forgot then break end
  redis.call('ZREM', KEYS[4], mark)
  budget = budget - 1
end
local gone = redis.call('ZRANGE', KEYS[5], '-inf', forgotText, 'BYSCORE', 'LIMIT', 0, math.max(budget, 1))
for _, feed in ipairs(gone) do
  if budget <= 0 then return 1 end
  redis.call('ZREM', KEYS[5], feed)
  redis.call('HDEL', KEYS[3], feed)
  budget = budget - 1
end
local due = redis.call('ZRANGE', KEYS[2], '-inf', bound, 'BYSCORE', 'LIMIT', 0, math.max(budget, 1))
for _, feed in ipairs(due) do
  if budget <= 0 then return 1 end
  local key = ARGV[1] .. 'feed:' .. feed
  local take = math.min(redis.call('ZCOUNT', key, '-inf', bound), math.max(budget - 1, 1))
  budget = budget - 1 - take
  if take > 0 then
    local last = redis.call('ZRANGE', key, take - 1, take - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', key, 0, take - 1)
    redis.call('HSET', KEYS[3], feed, last[2])
  end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', KEYS[2], first[2], feed)
  else
    redis.call('ZREM', KEYS[2], feed)
    local own = tonumber(redis.call('HGET', KEYS[3], feed) or '0')
    if own > forgot then
      redis.call('ZADD', KEYS[5], string.format('%.0f', own), feed)
    else
      redis.call('HDEL', KEYS[3], feed)
    end
  end
end
if budget <= 0 then return 1 end
if redis.call('ZRANGE', KEYS[2], '-inf', bound, 'BYSCORE', 'LIMIT', 0, 1)[1] then return 1 end
if redis.call('ZRANGE', KEYS[5], '-inf', forgotText, 'BYSCORE', 'LIMIT', 0, 1)[1] then return 1 end
return 0
`;
