-- raise_ids: from now on every id is at least ARGV[5]; never lowers. A raise
-- leaves a `raise` entry at the new id whose text is the id before it, so a
-- reader can tell this gap from a trimmed log. Returns {'ok', last id handed
-- out, 1 if raised else 0} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local current = tonumber(redis.call('GET', P .. 'ids') or '0')
local wanted = tonumber(ARGV[5])
if current + 1 >= wanted then
  return {'ok', current, 0}
end
redis.call('SET', P .. 'ids', num(wanted - 1))
local id = add1('raise', '', '', '', num(current), ME, '0')
return {'ok', id, 1}
