-- snapshot: the network's state at the last id handed out, read in one
-- atomic step, for a node that starts (core/replica.py's `load`). Returns
-- {'ok', head, nicks, rooms}: `nicks` flat, three values per nickname (its
-- spelling, owner node:epoch, connection); `rooms` one list per room: the
-- room as created, its topic ('<nick> <text>', or ''), then its members'
-- nickname keys.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local head = tonumber(redis.call('GET', P .. 'ids') or '0')
local nicks = {}
local registry = redis.call('HGETALL', P .. 'nodes')
for i = 1, #registry, 2 do
  local owner = registry[i] .. ':' .. registry[i + 1]
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'owned:' .. owner)) do
    local rec = redis.call('HMGET', P .. 'nick:' .. key, 'o', 'c', 'n')
    if rec[1] == owner then
      nicks[#nicks + 1] = rec[3]
      nicks[#nicks + 1] = rec[1]
      nicks[#nicks + 1] = rec[2]
    end
  end
end
local rooms = {}
local all = redis.call('HGETALL', P .. 'rooms')
for i = 1, #all, 2 do
  local room = {all[i + 1], redis.call('HGET', P .. 'topics', all[i]) or ''}
  for _, key in ipairs(redis.call('HKEYS', P .. 'members:' .. all[i])) do
    room[#room + 1] = key
  end
  rooms[#rooms + 1] = room
end
return {'ok', head, nicks, rooms}
