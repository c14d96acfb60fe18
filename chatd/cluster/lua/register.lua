-- register: a node starts. ARGV[4] (EPOCH) is the epoch this node held before
-- (remembered across a restart) or ''. ARGV[5] lease ms; ARGV[6..] pairs of
-- permanent room key and name. Returns {'ok', epoch} or {'node_taken', epoch}
-- when another process holds the node name's lease.
local lease = P .. 'node:' .. NODE
local current = redis.call('GET', lease)
if current and current ~= EPOCH then
  return {'node_taken', current}
end
-- The previous incarnation (crashed, or restarting now): its nicknames leave.
local old = redis.call('HGET', P .. 'nodes', NODE)
if old then
  reap_incarnation(NODE, old)
end
local epoch = num(redis.call('INCR', P .. 'epoch'))
redis.call('SET', lease, epoch, 'PX', ARGV[5])
redis.call('HSET', P .. 'nodes', NODE, epoch)
-- Every node has the same rooms.permanent (the last to register wins).
redis.call('DEL', P .. 'permanent')
for i = 6, #ARGV, 2 do
  redis.call('SADD', P .. 'permanent', ARGV[i])
  redis.call('HSETNX', P .. 'rooms', ARGV[i], ARGV[i + 1])
end
return {'ok', epoch}
