/**
 * Lua for RedisChangeIndex. Every script checks `meta` first: a missing meta hash means the
 * generation was lost (flush, restart, failover), which must surface, never read as "empty".
 *
 * Key layout under the prefix p: `${p}meta` hash {generation, position, readerXid, readerId, floor},
 * `${p}feed:<name>` sorted set (member = resource id, score = position), `${p}feeds` set of feed
 * names, `${p}floors` hash (feed name -> highest position of that feed removed by trim).
 *
 * Not Redis Cluster safe yet: append, trim and startGeneration derive feed keys from the prefix.
 * Numbers are written with %.0f: Lua's default tostring (%.14g) would round large positions.
 */

/**
 * KEYS: meta, feeds. ARGV: prefix, generation, expectedPosition, readerXid, readerId,
 * then feed, resourceId pairs. Returns {'lost'} | {'conflict'} | {'ok', generation, position,
 * readerXid, readerId, floor}.
 */
export const APPEND_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'generation', 'position', 'floor')
if not meta[1] or meta[1] ~= ARGV[2] then return {'lost'} end
if tonumber(meta[2]) ~= tonumber(ARGV[3]) then return {'conflict'} end
local position = tonumber(meta[2])
local seen = {}
for i = 6, #ARGV, 2 do
  local feed = ARGV[i]
  position = position + 1
  redis.call('ZADD', ARGV[1] .. 'feed:' .. feed, 'GT', string.format('%.0f', position), ARGV[i + 1])
  if not seen[feed] then
    seen[feed] = true
    redis.call('SADD', KEYS[2], feed)
  end
end
local head = string.format('%.0f', position)
redis.call('HSET', KEYS[1], 'position', head, 'readerXid', ARGV[4], 'readerId', ARGV[5])
return {'ok', meta[1], head, ARGV[4], ARGV[5], meta[3]}
`;

/**
 * Shared prologue of the per-feed reads. KEYS: meta, feed key, floors. ARGV[1]: feed name.
 * Leaves meta, feedMax (0 when the feed has no members) and feedFloor in locals.
 */
const READ_FEED = `
local meta = redis.call('HMGET', KEYS[1], 'generation', 'position')
if not meta[1] then return {'unavailable'} end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local feedFloor = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
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
 * KEYS: meta, feeds, floors. ARGV: prefix, generation, readerXid, readerId. Wipes the index, then
 * starts at position 0 with the reader checkpoint where the generation begins in the change log.
 */
export const START_GENERATION_SCRIPT = `
for _, feed in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', ARGV[1] .. 'feed:' .. feed)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'generation', ARGV[2], 'position', '0', 'readerXid', ARGV[3], 'readerId', ARGV[4], 'floor', '0')
return 1
`;

/**
 * KEYS: meta, feeds, floors. ARGV: prefix, position. Removes members at or below the position
 * (clamped to the head), records per feed the highest removed position, raises meta.floor.
 * Iterates every feed inside one script: fine for hundreds of feeds, not for millions.
 */
export const TRIM_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'position', 'floor')
if not meta[1] then return 0 end
local upTo = math.min(tonumber(ARGV[2]), tonumber(meta[1]))
if upTo <= tonumber(meta[2]) then return 0 end
local bound = string.format('%.0f', upTo)
for _, feed in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[1] .. 'feed:' .. feed
  local top = redis.call('ZRANGE', key, bound, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
  if top[2] then
    redis.call('HSET', KEYS[3], feed, top[2])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', bound)
  end
end
redis.call('HSET', KEYS[1], 'floor', bound)
return 1
`;
