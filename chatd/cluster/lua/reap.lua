-- reap: every registered node whose lease is gone loses its nicknames, each
-- announced by a `leave` entry. Idempotent: a second reaper finds nothing.
-- Returns {'ok', nodes reaped, nicknames freed} or {'fenced'}.
if not live(NODE, EPOCH) then
  return {'fenced'}
end
local registry = redis.call('HGETALL', P .. 'nodes')
local nodes, nicks = 0, 0
for i = 1, #registry, 2 do
  local node, epoch = registry[i], registry[i + 1]
  if not live(node, epoch) then
    nicks = nicks + reap_incarnation(node, epoch)
    nodes = nodes + 1
  end
end
return {'ok', nodes, nicks}
