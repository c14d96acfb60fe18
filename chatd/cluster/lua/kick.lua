-- kick: an operator removes nickname ARGV[5] (a key) with the text ARGV[6],
-- wherever it is connected. Like a leave, decided here once: the `kick`
-- entry's origin and connection are the kicked client's, so its node closes
-- it (`BYE kicked`) and every node announces `LEAVE <nick> kicked`.
-- Returns {'ok', id}, {'no_such_nick'} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local key, text = ARGV[5], ARGV[6]
local rec = redis.call('HMGET', P .. 'nick:' .. key, 'o', 'c', 'n')
if not rec[1] then
  return {'no_such_nick'}
end
return {'ok', drop_nick(key, rec[1], rec[2], rec[3], 'kick', text)}
