-- leave: connection ARGV[5] (nickname key ARGV[6]) leaves every room and its
-- nickname is freed. ARGV[7] is the reason code and text of `LEAVE` (a
-- `leave` entry), or '' to go silently (a `release` entry: a registration
-- that ends without announcement). Returns {'ok', id}, {'not_owner'} (kicked
-- or reaped already) or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local conn, key, reason = ARGV[5], ARGV[6], ARGV[7]
local nick = owned(key, conn)
if not nick then
  return {'not_owner'}
end
local kind = 'leave'
if reason == '' then
  kind = 'release'
end
return {'ok', drop_nick(key, ME, conn, nick, kind, reason)}
