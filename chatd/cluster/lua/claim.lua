-- claim: connection ARGV[5] of this node takes nickname ARGV[7] (key
-- ARGV[6]). A nickname held by a dead incarnation is reaped first. Returns
-- {'ok', id of the `nick` entry}, {'nick_taken'} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, key, spelling = ARGV[5], ARGV[6], ARGV[7]
if not free_nick(key) then
  return {'nick_taken'}
end
redis.call('HSET', P .. 'nick:' .. key, 'o', ME, 'c', conn, 'n', spelling)
redis.call('SADD', P .. 'owned:' .. ME, key)
return {'ok', add1('nick', '', '', spelling, '', ME, conn)}
