-- rename: connection ARGV[5] changes its nickname (key ARGV[6]) to ARGV[8]
-- (key ARGV[7]; the same key for a change of case). The entry's nick is the
-- old spelling, its text the new one. Returns {'ok', id}, {'nick_taken'},
-- {'not_owner'} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, old_key, new_key, spelling = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local old = owned(old_key, conn)
if not old then
  return {'not_owner'}
end
if new_key ~= old_key then
  if not free_nick(new_key) then
    return {'nick_taken'}
  end
  redis.call('RENAME', P .. 'nick:' .. old_key, P .. 'nick:' .. new_key)
  redis.call('SREM', P .. 'owned:' .. ME, old_key)
  redis.call('SADD', P .. 'owned:' .. ME, new_key)
  local rooms = redis.call('SMEMBERS', P .. 'in:' .. old_key)
  for _, room in ipairs(rooms) do
    redis.call('HDEL', P .. 'members:' .. room, old_key)
    redis.call('HSET', P .. 'members:' .. room, new_key, NODE)
  end
  if #rooms > 0 then
    redis.call('RENAME', P .. 'in:' .. old_key, P .. 'in:' .. new_key)
  end
end
redis.call('HSET', P .. 'nick:' .. new_key, 'n', spelling)
return {'ok', add1('rename', '', '', old, spelling, ME, conn)}
