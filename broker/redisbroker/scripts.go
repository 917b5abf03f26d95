package redisbroker

import (
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// The Lua scripts below run atomically in Redis, so each sees and leaves a
// channel's keys consistent: the stream hash (KEYS[1]), the history
// (KEYS[2]) and, for a keyed publish, the idempotency key (KEYS[3]).
//
// Every script starts with streamPrelude, which reads the channel's epoch
// and offset and, when the stream must start anew, creates it with the
// epoch the caller proposed (ARGV[1], "EPOCH", or "EPOCH SEEN OFFSET" when
// the caller saw the stream in epoch SEEN at OFFSET) and offset 0, and
// deletes any history left from the old stream. It then extends the hash's life: by
// the stream TTL in milliseconds (ARGV[2]) once the stream was published
// to, by the history TTL (ARGV[3]) while it was not, so that reading or
// subscribing to names nobody publishes to leaves nothing behind for
// long. (A node keeps the stream of a channel it subscribes to alive; see
// keepAlive.)
//
// A stream starts anew when its hash is missing (never used, expired, or
// lost by Redis) or was written by another Redis process than the one
// running the script: the hash keeps the run_id of the process that
// created it (r), and a Redis that loaded its data from disk (an RDB
// snapshot, an AOF missing its last second) or took over as a promoted
// replica has a new run_id. Such a Redis may hold the stream at an older
// offset than subscribers have already seen; continuing the epoch from
// there would hand out their offsets again. A restart that lost nothing
// (a graceful SHUTDOWN, AOF with appendfsync always) looks the same from
// here, so it too starts a new epoch: a client told recovered:false
// reloads, a client given a reused offset drops the message as a
// duplicate. For the same reason a stream still in the epoch the caller
// saw, but behind the offset it saw, starts anew (see seen).
//
// Times come from Redis's clock (TIME), the same clock that stamps the
// history entries' IDs, so nodes with skewed clocks agree on ages.
const streamPrelude = `
local info = redis.call('INFO', 'server')
local at = string.find(info, 'run_id:', 1, true)
if not at then
  return redis.error_reply('herald: INFO server shows no run_id')
end
local run = string.sub(info, at + 7, at + 46)
local fresh, seen, floor = string.match(ARGV[1], '^(%S+) (%S+) (%d+)$')
if not fresh then
  fresh = ARGV[1]
end
local state = redis.call('HMGET', KEYS[1], 'e', 'o', 'r')
local epoch, offset = state[1], tonumber(state[2])
if not epoch or state[3] ~= run or (epoch == seen and offset < tonumber(floor)) then
  epoch, offset = fresh, 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0, 'r', run)
end
redis.call('PEXPIRE', KEYS[1], offset > 0 and ARGV[2] or ARGV[3])
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function entryms(e)
  return tonumber(string.sub(e[1], 1, string.find(e[1], '-', 1, true) - 1))
end
local function push(out, e)
  local f = e[2]
  local t, c, u = '0', '', ''
  for i = 5, #f - 1, 2 do
    if f[i] == 't' then t = f[i + 1] elseif f[i] == 'c' then c = f[i + 1] elseif f[i] == 'u' then u = f[i + 1] end
  end
  out[#out + 1] = f[2]
  out[#out + 1] = f[4]
  out[#out + 1] = t
  out[#out + 1] = c
  out[#out + 1] = u
end
`

// A history entry holds the fields o (offset) and d (data), in that order,
// then t (the publication's time in ms, by the publishing node's clock)
// and, for a publication from a connection, c and u (its session and user
// ids). Scripts that return entries return five values for each (push):
// offset, data, time, client, user; entries written before t was kept
// have time 0.`

// publishScript appends a publication. ARGV[4] data, ARGV[5] history size,
// ARGV[6] pub/sub channel, ARGV[7] history bytes (negative: no bound),
// ARGV[8] time in ms, ARGV[9] and ARGV[10] the client and user ids (empty
// for the application), ARGV[11] the command that publishes (PUBLISH, or
// SPUBLISH on Redis Cluster). The pub/sub message is "OFFSET EPOCH TIME CLEN
// ULEN " followed by the client id, the user id and the data, CLEN and
// ULEN being the ids' lengths in bytes. It
// returns {epoch, offset}: the new publication's, or for a key already used
// in this epoch within the history TTL, the first publication's (nothing is
// stored or published then).
//
// History is a Redis stream whose entry IDs Redis assigns from its clock
// (never going back). After appending, the script drops the oldest
// entries while there are more than the size, their data adds up to more
// than the byte bound, or they are older than the TTL; the newest is
// always kept. The stream hash's field b holds the bytes of data in
// history (stale when the history key expired, which it does with its
// newest entry). The idempotency key expires with the TTL.
var publishScript = rueidis.NewLuaScript(publishSource)

// publishSource is publishScript's text, and publishSHA1 its SHA-1 (for
// execWait).
var (
	publishSHA1   = sha1hex(publishSource)
	publishSource = streamPrelude + `
if KEYS[3] then
  local used = redis.call('GET', KEYS[3])
  if used then
    local sp = string.find(used, ' ', 1, true)
    if sp and string.sub(used, sp + 1) == epoch then
      return {epoch, tonumber(string.sub(used, 1, sp - 1))}
    end
  end
end
offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local off = string.format('%d', offset)
local bytes = 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  bytes = tonumber(redis.call('HGET', KEYS[1], 'b')) or 0
end
local newest
if ARGV[9] ~= '' then
  newest = redis.call('XADD', KEYS[2], '*', 'o', off, 'd', ARGV[4], 't', ARGV[8], 'c', ARGV[9], 'u', ARGV[10])
else
  newest = redis.call('XADD', KEYS[2], '*', 'o', off, 'd', ARGV[4], 't', ARGV[8])
end
bytes = bytes + #ARGV[4]
local size, maxbytes = tonumber(ARGV[5]), tonumber(ARGV[7])
local minms = nowms() - tonumber(ARGV[3])
local n = redis.call('XLEN', KEYS[2])
local keep, from = newest, '-'
while n > 1 do
  local e = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 1)[1]
  local ms = entryms(e)
  if n <= size and (maxbytes < 0 or bytes <= maxbytes) and ms >= minms then
    keep = e[1]
    break
  end
  bytes = bytes - #e[2][4]
  n = n - 1
  from = '(' .. e[1]
end
if from ~= '-' then
  redis.call('XTRIM', KEYS[2], 'MINID', keep)
end
redis.call('HSET', KEYS[1], 'b', bytes)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if KEYS[3] then
  redis.call('SET', KEYS[3], off .. ' ' .. epoch, 'PX', ARGV[3])
end
redis.call(ARGV[11], ARGV[6], off .. ' ' .. epoch .. ' ' .. ARGV[8] .. ' ' .. #ARGV[9] .. ' ' .. #ARGV[10] .. ' ' .. ARGV[9] .. ARGV[10] .. ARGV[4])
return {epoch, offset}
`
)

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// positionScript returns {epoch, offset}, creating the stream if needed.
var positionScript = rueidis.NewLuaScript(streamPrelude + `
return {epoch, offset}
`)

// historyScript reads the publications after a position. ARGV[4] since
// epoch, ARGV[5] since offset, ARGV[6] limit (0: none), ARGV[7] history
// size. It returns {epoch, offset, 0} when the
// position cannot be recovered (another epoch, an offset from the future,
// or publications after it that left history by count, bytes or age), and
// otherwise {epoch, offset, 1, entry...} with the publications after
// since, oldest first, at most limit of them, five values each (push).
//
// The missed publications are the newest entries of the history, so
// XREVRANGE with COUNT reads exactly them; the oldest of them must carry
// offset since+1 and be younger than the TTL (entries only get younger
// from there).
var historyScript = rueidis.NewLuaScript(streamPrelude + `
local since = tonumber(ARGV[5])
if ARGV[4] ~= epoch or since > offset then
  return {epoch, offset, 0}
end
local missed = offset - since
if missed == 0 then
  return {epoch, offset, 1}
end
if missed > tonumber(ARGV[7]) then
  return {epoch, offset, 0}
end
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', missed)
if #entries < missed then
  return {epoch, offset, 0}
end
local oldest = entries[missed]
if tonumber(oldest[2][2]) ~= since + 1 then
  return {epoch, offset, 0}
end
if nowms() - entryms(oldest) > tonumber(ARGV[3]) then
  return {epoch, offset, 0}
end
local n = missed
local limit = tonumber(ARGV[6])
if limit > 0 and limit < n then
  n = limit
end
local out = {epoch, offset, 1}
for i = missed, missed - n + 1, -1 do
  push(out, entries[i])
end
return out
`)

// pageScript reads a page of history backwards. ARGV[4] before (0: none),
// ARGV[5] limit. It returns {epoch, offset, more, entry...}: the newest
// limit publications held with an offset below before, oldest first, five
// values each (push), and more = 1 when history holds older ones.
//
// History holds the newest offsets without a gap, newest last, so the
// entry of offset k is the (offset-k+1)-th from the end: XREVRANGE reads
// the ones to skip, the page and one more (for more). An entry older than
// the TTL, and every one before it, no longer counts as held.
var pageScript = rueidis.NewLuaScript(streamPrelude + `
local before, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local top = offset
if before > 0 and before - 1 < top then
  top = before - 1
end
local out = {epoch, offset, 0}
if top < 1 or limit < 1 then
  return out
end
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', offset - top + limit + 1)
local minms = nowms() - tonumber(ARGV[3])
local got = {}
for i = 1, #entries do
  local e = entries[i]
  if tonumber(e[2][2]) ~= offset - i + 1 or entryms(e) < minms then
    break
  end
  if tonumber(e[2][2]) <= top then
    if #got == limit then
      out[3] = 1
      break
    end
    got[#got + 1] = e
  end
end
for i = #got, 1, -1 do
  push(out, got[i])
end
return out
`)

// touchScript extends the life of a stream hash that exists, as the
// prelude does, and returns its offset (-1: no hash). ARGV[1] stream TTL,
// ARGV[2] history TTL, both in ms.
var touchScript = rueidis.NewLuaScript(`
local offset = tonumber(redis.call('HGET', KEYS[1], 'o'))
if not offset then
  return -1
end
redis.call('PEXPIRE', KEYS[1], offset > 0 and ARGV[1] or ARGV[2])
return offset
`)
