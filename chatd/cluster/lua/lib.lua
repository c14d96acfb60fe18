-- lib.lua: put in front of every script (chatd/cluster/scripts.py), so each
-- one stays a single atomic EVALSHA.
--
-- ARGV[1..4] are the same for every script: the key prefix, the log's
-- MAXLEN, the calling node and its epoch (its fencing token). A script's own
-- arguments start at ARGV[5]. Keys are built here from the prefix (one Redis
-- primary, not Redis Cluster: scripts reach keys they discover, such as the
-- nicknames of a dead node). Key layout: docs/architecture.md, "Cluster".
--
-- NOTE: a script that fails half-way keeps its writes (Redis does not roll
-- back), so every check comes before the first write, and `add` is the last
-- step of each script.

local P, LOG_MAX, NODE, EPOCH = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ME = NODE .. ':' .. EPOCH

-- Integers as Redis writes them: Lua's tostring() turns big ones into 1e+15.
local function num(n)
  return string.format('%d', n)
end

-- Whether `node` still holds a lease under `epoch`.
local function live(node, epoch)
  return redis.call('GET', P .. 'node:' .. node) == epoch
end

-- Redis's clock, in ms: one clock for every node's events.
local function now_ms()
  local t = redis.call('TIME')
  return t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
end

-- One log entry per text, ids taken in the same step: log order is id order.
-- Every entry has the same eight fields in the same order, so Redis stores
-- their names once per stream node. Returns the first and last id.
local function add(kind, room, shown, nick, texts, origin, conn)
  local n = #texts
  local last = redis.call('INCRBY', P .. 'ids', n)
  local ms = now_ms()
  for i = 1, n do
    redis.call('XADD', P .. 'log', 'MAXLEN', '~', LOG_MAX, '0-' .. num(last - n + i),
      'k', kind, 'r', room, 'R', shown, 'n', nick, 't', texts[i], 'ms', ms, 'o', origin, 'c', conn)
  end
  return last - n + 1, last
end

local function add1(kind, room, shown, nick, text, origin, conn)
  local id = add(kind, room, shown, nick, {text}, origin, conn)
  return id
end

-- The spelling of nickname `key` if this node's connection `conn` holds it.
local function owned(key, conn)
  local rec = redis.call('HMGET', P .. 'nick:' .. key, 'o', 'c', 'n')
  if rec[1] == ME and rec[2] == conn then
    return rec[3]
  end
  return nil
end

-- A room that is neither permanent nor has members ends.
local function end_if_empty(room)
  if redis.call('EXISTS', P .. 'members:' .. room) == 0
      and redis.call('SISMEMBER', P .. 'permanent', room) == 0 then
    redis.call('HDEL', P .. 'rooms', room)
  end
end

-- Nickname `key` leaves all its rooms and is freed, with one entry saying so.
local function drop_nick(key, owner, conn, spelling, kind, text)
  local rooms_of = P .. 'in:' .. key
  for _, room in ipairs(redis.call('SMEMBERS', rooms_of)) do
    redis.call('HDEL', P .. 'members:' .. room, key)
    end_if_empty(room)
  end
  redis.call('DEL', rooms_of, P .. 'nick:' .. key)
  redis.call('SREM', P .. 'owned:' .. owner, key)
  return add1(kind, '', '', spelling, text, owner, conn)
end

-- Every nickname of a node's dead incarnation leaves (`LEAVE <nick>
-- connection_lost ...`), and the incarnation is forgotten. Idempotent.
local function reap_incarnation(node, epoch)
  local owner = node .. ':' .. epoch
  local count = 0
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'owned:' .. owner)) do
    local rec = redis.call('HMGET', P .. 'nick:' .. key, 'o', 'c', 'n')
    if rec[1] == owner then
      drop_nick(key, owner, rec[2], rec[3], 'leave', 'connection_lost node ' .. node .. ' lost')
      count = count + 1
    end
  end
  redis.call('DEL', P .. 'owned:' .. owner)
  if redis.call('HGET', P .. 'nodes', node) == epoch then
    redis.call('HDEL', P .. 'nodes', node)
  end
  return count
end

-- Nickname `key` is free, or held by a dead incarnation (reaped here).
local function free_nick(key)
  local owner = redis.call('HGET', P .. 'nick:' .. key, 'o')
  if not owner then
    return true
  end
  local node, epoch = string.match(owner, '^(.*):(%d+)$')
  if live(node, epoch) then
    return false
  end
  reap_incarnation(node, epoch)
  return true
end
