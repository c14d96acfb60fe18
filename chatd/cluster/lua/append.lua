-- append: events, one entry per text (ARGV[9..]: the lines of one read),
-- of kind ARGV[7]: `msg` or `action` from connection ARGV[5] (nickname key
-- ARGV[6]) in room ARGV[8] (key), which it must be in; `dm` to the nickname
-- whose key is ARGV[8]; `info` (an operator's broadcast: no nickname, no
-- target). Returns {'ok', first id, last id}, {'not_owner'},
-- {'not_in_room'}, {'no_such_nick'} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, key, kind, target = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nick, shown = '', ''
if kind ~= 'info' then
  nick = owned(key, conn)
  if not nick then
    return {'not_owner'}
  end
end
if kind == 'msg' or kind == 'action' then
  if redis.call('HEXISTS', P .. 'members:' .. target, key) == 0 then
    return {'not_in_room'}
  end
  shown = redis.call('HGET', P .. 'rooms', target)
elseif kind == 'dm' then
  shown = redis.call('HGET', P .. 'nick:' .. target, 'n')
  if not shown then
    return {'no_such_nick'}
  end
elseif kind ~= 'info' then
  return redis.error_reply('ERR chatd append: unknown kind ' .. kind)
end
local texts = {}
for i = 9, #ARGV do
  texts[#texts + 1] = ARGV[i]
end
local first, last = add(kind, target, shown, nick, texts, ME, conn)
return {'ok', first, last}
