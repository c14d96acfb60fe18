-- part: connection ARGV[5] (nickname key ARGV[6]) leaves room ARGV[7] (key)
-- with the text ARGV[8]. Returns {'ok', id}, {'not_owner'}, {'not_in_room'}
-- or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, key, room, text = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nick = owned(key, conn)
if not nick then
  return {'not_owner'}
end
if redis.call('HDEL', P .. 'members:' .. room, key) == 0 then
  return {'not_in_room'}
end
redis.call('SREM', P .. 'in:' .. key, room)
local shown = redis.call('HGET', P .. 'rooms', room)
end_if_empty(room)
return {'ok', add1('part', room, shown, nick, text, ME, conn)}
