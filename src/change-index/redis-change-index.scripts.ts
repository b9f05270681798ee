/** One time mark per this many ms: the precision of trimming by age. */
export const MARK_EVERY_MS = 1000;

/**
 * Lua for RedisChangeIndex. Every script checks `meta` first: a missing meta hash means the
 * generation was lost (flush, restart, failover), which must surface, never read as "empty".
 *
 * Key layout under the prefix p: `${p}meta` hash {generation, position, readerXid, readerId, floor},
 * `${p}feed:<name>` sorted set (member = resource id, score = position), `${p}oldest` sorted set
 * (member = feed name, score = at most the position of its oldest indexed change: trim's work
 * list), `${p}floors` hash (feed name -> highest position of that feed removed by trim), `${p}marks`
 * sorted set (member = position, score = epoch ms it was written; about one per second). A feed
 * with no indexed change is in none of them and answers with the index floor.
 *
 * Not Redis Cluster safe yet: append, trim and startGeneration derive feed keys from the prefix.
 * Numbers are written with %.0f: Lua's default tostring (%.14g) would round large positions.
 */

/**
 * KEYS: meta, oldest, floors, marks. ARGV: prefix, generation, expectedPosition, readerXid,
 * readerId, writtenAt (epoch ms), then feed, resourceId pairs. Returns {'lost'} | {'conflict'} |
 * {'ok', generation, position, readerXid, readerId, floor}.
 */
export const APPEND_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'generation', 'position', 'floor')
if not meta[1] or meta[1] ~= ARGV[2] then return {'lost'} end
if tonumber(meta[2]) ~= tonumber(ARGV[3]) then return {'conflict'} end
local floor = meta[3] or '0'
local position = tonumber(meta[2])
local seen = {}
for i = 7, #ARGV, 2 do
  local feed = ARGV[i]
  position = position + 1
  local at = string.format('%.0f', position)
  redis.call('ZADD', ARGV[1] .. 'feed:' .. feed, 'GT', at, ARGV[i + 1])
  if not seen[feed] then
    seen[feed] = true
    -- A feed (re-)entering the index may have had changes below the floor: start its floor there.
    if redis.call('ZADD', KEYS[2], 'NX', at, feed) == 1 and tonumber(floor) > 0 then
      redis.call('HSET', KEYS[3], feed, floor)
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
 * Leaves meta, feedMax (0 when the feed has no members) and feedFloor in locals.
 */
const READ_FEED = `
local meta = redis.call('HMGET', KEYS[1], 'generation', 'position', 'floor')
if not meta[1] then return {'unavailable'} end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local feedFloor = redis.call('HGET', KEYS[3], ARGV[1])
if feedFloor then feedFloor = tonumber(feedFloor)
elseif top[2] then feedFloor = 0
else feedFloor = tonumber(meta[3] or '0') end -- not in the index: changed, if ever, below its floor
local feedMax = feedFloor
if top[2] and tonumber(top[2]) > feedMax then feedMax = tonumber(top[2]) end
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

/**
 * KEYS: meta, oldest, floors, marks. ARGV: prefix, generation, readerXid, readerId. Wipes the
 * index, then starts at position 0 with the reader checkpoint where the generation begins in the
 * change log.
 */
export const START_GENERATION_SCRIPT = `
for _, feed in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  redis.call('DEL', ARGV[1] .. 'feed:' .. feed)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'generation', ARGV[2], 'position', '0', 'readerXid', ARGV[3], 'readerId', ARGV[4], 'floor', '0')
return 1
`;

/**
 * One bounded step of a trim. KEYS: meta, oldest, floors, marks. ARGV: prefix, position, budget.
 * Raises meta.floor to the position (clamped to the head) first, then works through the feeds
 * whose oldest change is at or below the floor, spending one unit per feed visited and per member
 * or mark removed: a feed keeps its highest removed position as its floor, and leaves every
 * structure once empty. Returns 1 while work remains (call again), 0 when done.
 */
export const TRIM_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'position', 'floor')
if not meta[1] then return 0 end
local floor = tonumber(meta[2] or '0')
local upTo = math.min(tonumber(ARGV[2]), tonumber(meta[1]))
if upTo > floor then
  floor = upTo
  redis.call('HSET', KEYS[1], 'floor', string.format('%.0f', floor))
end
local bound = string.format('%.0f', floor)
local budget = tonumber(ARGV[3])
local marks = redis.call('ZRANGE', KEYS[4], 0, budget - 1)
for _, mark in ipairs(marks) do
  if tonumber(mark) > floor then break end
  redis.call('ZREM', KEYS[4], mark)
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
    redis.call('HDEL', KEYS[3], feed)
  end
end
if budget <= 0 then return 1 end
if redis.call('ZRANGE', KEYS[2], '-inf', bound, 'BYSCORE', 'LIMIT', 0, 1)[1] then return 1 end
return 0
`;
