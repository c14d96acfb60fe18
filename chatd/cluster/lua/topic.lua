-- topic: connection ARGV[5] (nickname key ARGV[6]) sets the topic of room
-- ARGV[7] (key) to ARGV[8]. Returns {'ok', id}, {'not_owner'},
-- {'not_in_room'} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, key, room, text = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nick = owned(key, conn)
if not nick then
  return {'not_owner'}
end
if redis.call('HEXISTS', P .. 'members:' .. room, key) == 0 then
  return {'not_in_room'}
end
redis.call('HSET', P .. 'topics', room, nick .. ' ' .. text)
local shown = redis.call('HGET', P .. 'rooms', room)
return {'ok', add1('topic', room, shown, nick, text, ME, conn)}
