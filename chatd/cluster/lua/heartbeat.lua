-- heartbeat: renew this node's lease for ARGV[5] ms. Returns {'ok', last id
-- handed out} (the head of the log, for the reader's lag), or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
redis.call('PEXPIRE', P .. 'node:' .. NODE, ARGV[5])
return {'ok', tonumber(redis.call('GET', P .. 'ids') or '0')}
