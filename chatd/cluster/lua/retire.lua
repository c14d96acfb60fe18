-- retire: a node that stops on purpose gives its lease back at once, so
-- that its name is free for the next start: nicknames it still holds leave
-- as in a reap. Returns {'ok', nicknames freed} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
redis.call('DEL', P .. 'node:' .. NODE)
return {'ok', reap_incarnation(NODE, EPOCH)}
