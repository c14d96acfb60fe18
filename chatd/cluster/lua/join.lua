-- join: connection ARGV[5] (nickname key ARGV[6]) joins room ARGV[7] (key),
-- created as ARGV[8] if ARGV[9] is '1' and fewer than ARGV[10] rooms exist;
-- the nickname may be in at most ARGV[11] rooms. Returns {'ok', id, room as
-- shown, 1 if created else 0}, {'not_owner'}, {'already_in'},
-- {'too_many_rooms', 'client'|'server'}, {'no_such_room'} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, key, room, name = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nick = owned(key, conn)
if not nick then
  return {'not_owner'}
end
local members = P .. 'members:' .. room
if redis.call('HEXISTS', members, key) == 1 then
  return {'already_in'}
end
if redis.call('SCARD', P .. 'in:' .. key) >= tonumber(ARGV[11]) then
  return {'too_many_rooms', 'client'}
end
local shown = redis.call('HGET', P .. 'rooms', room)
local created = 0
if not shown then
  if ARGV[9] ~= '1' then
    return {'no_such_room'}
  end
  if redis.call('HLEN', P .. 'rooms') >= tonumber(ARGV[10]) then
    return {'too_many_rooms', 'server'}
  end
  redis.call('HSET', P .. 'rooms', room, name)
  shown, created = name, 1
end
redis.call('HSET', members, key, NODE)
redis.call('SADD', P .. 'in:' .. key, room)
return {'ok', add1('join', room, shown, nick, '', ME, conn), shown, created}
