"""The Lua scripts of the Redis store: every write is one script, so it is atomic in Redis.

Keys (``P`` is the store's key prefix, ``taskcast:`` by default):

* ``P run:ID``: the run record, a hash of ``Run`` fields, each JSON-encoded; plus private fields
  ``_qid`` (the run's entry in its task's queue stream, while it has one), ``_cancel`` (a cancel
  request for the worker holding the run), ``_w`` (the token of the last write, so a write
  retried after a lost reply is not applied twice), and ``_sigs`` and ``_sig:NAME`` (the
  signals the run holds, sent and not yet taken by its task: in all, and of one name);
* ``P log:ID``: the run's event log, a stream whose entry id ``SEQ-0`` is the event's ``seq``;
* ``P runs``: every run id (sorted set, lexical: ULIDs sort by time); ``P state:STATE``: the ids
  per state; ``P finished``: finished run ids scored by their finish time (for ``prune``);
  ``P counts``: a hash ``STATE<tab>TASK_JSON -> count``;
* ``P queue:TASK``: the work queue of a task, a stream read by the consumer group ``workers``;
* channels ``P events`` (every appended event, in commit order: ``SEQ\nAT\n[ID,TYPE]\nDATA``)
  and ``P control`` (for the worker holding a run: ``["cancel",ID,REASON]\n`` and
  ``["signal",ID,SEQ]\nAT\nDATA``).
"""

from __future__ import annotations

GROUP = "workers"

_PRELUDE = """
local P = ARGV[1]

-- Append one event to run `id` (whose hash is `rkey`), publish it, return its seq.
local function add_event(id, rkey, etype, at, data)
  local seq = redis.call('HINCRBY', rkey, 'last_seq', 1)
  redis.call('XADD', P .. 'log:' .. id, seq .. '-0', 't', etype, 'a', at, 'd', data)
  redis.call('PUBLISH', P .. 'events',
             seq .. '\\n' .. at .. '\\n' .. cjson.encode({id, etype}) .. '\\n' .. data)
  return seq
end

-- Acknowledge and delete the run's queue entry, if it has one.
local function ack(rkey, task)
  local qid = redis.call('HGET', rkey, '_qid')
  if qid then
    local queue = P .. 'queue:' .. task
    redis.call('XACK', queue, 'workers', qid)
    redis.call('XDEL', queue, qid)
    redis.call('HDEL', rkey, '_qid')
  end
end

-- Move run `id` from state `current` to `target` (raw names), set the given fields, append
-- the announcing event; on a terminal state, index it as finished and ack its queue entry.
local function move(id, rkey, current, target, etype, at, data, terminal, fields)
  if #fields > 0 then redis.call('HSET', rkey, unpack(fields)) end
  redis.call('HSET', rkey, 'state', cjson.encode(target))
  local task_json = redis.call('HGET', rkey, 'task')
  if current ~= target then
    redis.call('ZREM', P .. 'state:' .. current, id)
    redis.call('ZADD', P .. 'state:' .. target, 0, id)
    redis.call('HINCRBY', P .. 'counts', current .. '\\t' .. task_json, -1)
    redis.call('HINCRBY', P .. 'counts', target .. '\\t' .. task_json, 1)
  end
  add_event(id, rkey, etype, at, data)
  if terminal then
    local finished_at = tonumber(redis.call('HGET', rkey, 'finished_at')) or tonumber(at)
    redis.call('ZADD', P .. 'finished', finished_at, id)
    ack(rkey, cjson.decode(task_json))
    redis.call('HDEL', rkey, '_cancel')
  end
end

local TERMINAL = {completed = true, failed = true, cancelled = true, timed_out = true}
"""

CREATE_RUN = (
    _PRELUDE
    + """
-- ARGV: P, id, at, data, max_queued (0: no bound), enqueue (1/0), token, field, value, ...
local id = ARGV[2]
local rkey = P .. 'run:' .. id
if redis.call('EXISTS', rkey) == 1 then return {0, redis.call('HGETALL', rkey)} end
local max_queued = tonumber(ARGV[5])
if max_queued > 0 and redis.call('ZCARD', P .. 'state:queued') >= max_queued then
  return {-1}
end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', rkey, unpack(fields))
redis.call('HSET', rkey, '_w', ARGV[7])
local task_json = redis.call('HGET', rkey, 'task')
redis.call('ZADD', P .. 'runs', 0, id)
redis.call('ZADD', P .. 'state:queued', 0, id)
redis.call('HINCRBY', P .. 'counts', 'queued\\t' .. task_json, 1)
local seq = add_event(id, rkey, 'queued', ARGV[3], ARGV[4])
if ARGV[6] == '1' then
  local qid = redis.call('XADD', P .. 'queue:' .. cjson.decode(task_json), '*', 'run', id)
  redis.call('HSET', rkey, '_qid', qid)
end
return {1, seq}
"""
)

CREATE_RUNS = (
    _PRELUDE
    + """
-- ARGV: P, at, data, max_queued (0: no bound), then one JSON array per run:
-- [id, field, value, ...]. All or nothing: {-1} if they would not all fit in the queue bound.
local count = #ARGV - 4
local max_queued = tonumber(ARGV[4])
if max_queued > 0 and redis.call('ZCARD', P .. 'state:queued') + count > max_queued then
  return {-1}
end
for i = 5, #ARGV do
  local flat = cjson.decode(ARGV[i])
  local id = flat[1]
  local rkey = P .. 'run:' .. id
  redis.call('HSET', rkey, unpack(flat, 2))
  local task_json = redis.call('HGET', rkey, 'task')
  redis.call('ZADD', P .. 'runs', 0, id)
  redis.call('ZADD', P .. 'state:queued', 0, id)
  redis.call('HINCRBY', P .. 'counts', 'queued\\t' .. task_json, 1)
  add_event(id, rkey, 'queued', ARGV[2], ARGV[3])
  local qid = redis.call('XADD', P .. 'queue:' .. cjson.decode(task_json), '*', 'run', id)
  redis.call('HSET', rkey, '_qid', qid)
end
return {1, count}
"""
)

APPEND = (
    _PRELUDE
    + """
-- ARGV: P, id, type, at, data, token[, signal name, most of that name, most in all].
-- Returns {1, seq}, {-1} unknown, {0, state} finished, {-2, limit, 1 (of that name) or 0 (in
-- all)} for a signal beyond what the run may hold.
local id = ARGV[2]
local rkey = P .. 'run:' .. id
local state = redis.call('HGET', rkey, 'state')
if not state then return {-1} end
if ARGV[6] ~= '' and redis.call('HGET', rkey, '_w') == ARGV[6] then
  return {1, tonumber(redis.call('HGET', rkey, 'last_seq'))}  -- a retry of an applied write
end
state = cjson.decode(state)
if TERMINAL[state] then return {0, state} end
if ARGV[7] then  -- a signal: counted as held until its task takes it (TAKE_SIGNAL)
  local name = '_sig:' .. ARGV[7]
  if tonumber(redis.call('HGET', rkey, name) or '0') >= tonumber(ARGV[8]) then
    return {-2, tonumber(ARGV[8]), 1}
  end
  if tonumber(redis.call('HGET', rkey, '_sigs') or '0') >= tonumber(ARGV[9]) then
    return {-2, tonumber(ARGV[9]), 0}
  end
  redis.call('HINCRBY', rkey, name, 1)
  redis.call('HINCRBY', rkey, '_sigs', 1)
end
redis.call('HSET', rkey, '_w', ARGV[6])
local seq = add_event(id, rkey, ARGV[3], ARGV[4], ARGV[5])
if ARGV[3] == 'signal' then  -- for the worker holding the run (workers need not follow events)
  redis.call('PUBLISH', P .. 'control',
             cjson.encode({'signal', id, seq}) .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[5])
end
return {1, seq}
"""
)

TRANSITION = (
    _PRELUDE
    + """
-- ARGV: P, id, target, allowed sources (space-separated), type, at, data, terminal (1/0),
--       token, field, value, ...
-- Returns {1, hash} moved, {0} not allowed from the current state, {-1} unknown run, {2} moved
-- to cancelled instead (a cancel request is pending on the running run).
local id = ARGV[2]
local rkey = P .. 'run:' .. id
local current = redis.call('HGET', rkey, 'state')
if not current then return {-1} end
if ARGV[9] ~= '' and redis.call('HGET', rkey, '_w') == ARGV[9] then
  return {1, redis.call('HGETALL', rkey)}  -- a retry of an applied write
end
current = cjson.decode(current)
if not string.find(' ' .. ARGV[4] .. ' ', ' ' .. current .. ' ', 1, true) then return {0} end
redis.call('HSET', rkey, '_w', ARGV[9])
local requested = redis.call('HGET', rkey, '_cancel')
if requested and current == 'running' and ARGV[3] ~= 'cancelled' then
  -- A cancel was accepted for this run (request_cancel said True): it ends cancelled,
  -- whatever its worker was about to record ({2}: moved, but not as asked).
  move(id, rkey, current, 'cancelled', 'cancelled', ARGV[6], cjson.encode({reason = requested}),
       true, {'error', cjson.encode({type = 'Cancelled', message = requested}),
              'finished_at', ARGV[6]})
  return {2}
end
local fields = {}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
move(id, rkey, current, ARGV[3], ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1', fields)
return {1, redis.call('HGETALL', rkey)}
"""
)

REQUEST_CANCEL = (
    _PRELUDE
    + """
-- ARGV: P, id, reason, at, data, error json, finished_at json.
-- A queued or interrupted run is cancelled here and now ({1}); a running one is asked to stop
-- (the request is kept on the run and published to the workers) ({2}); {0} finished; {-1}.
local id = ARGV[2]
local rkey = P .. 'run:' .. id
local current = redis.call('HGET', rkey, 'state')
if not current then return {-1} end
current = cjson.decode(current)
if current == 'queued' or current == 'interrupted' then
  move(id, rkey, current, 'cancelled', 'cancelled', ARGV[4], ARGV[5], true,
       {'error', ARGV[6], 'finished_at', ARGV[7]})
  return {1}
end
if current == 'running' then
  redis.call('HSET', rkey, '_cancel', ARGV[3])
  redis.call('PUBLISH', P .. 'control', cjson.encode({'cancel', id, ARGV[3]}) .. '\\n')
  return {2}
end
return {0}
"""
)

TAKE_SIGNAL = """
-- ARGV: P, id, name. The run's task took a signal of that name: it holds one fewer.
local rkey = ARGV[1] .. 'run:' .. ARGV[2]
local name = '_sig:' .. ARGV[3]
if tonumber(redis.call('HGET', rkey, name) or '0') > 0 then
  redis.call('HINCRBY', rkey, name, -1)
  redis.call('HINCRBY', rkey, '_sigs', -1)
end
return 1
"""

HEARTBEAT = """
-- ARGV: P, consumer, id, qid, id, qid ... Extends the visibility of each entry this consumer
-- still holds. Returns {lost ids, {id, cancel reason} ...}.
local P, consumer = ARGV[1], ARGV[2]
local lost, cancels = {}, {}
for i = 3, #ARGV, 2 do
  local id, qid = ARGV[i], ARGV[i + 1]
  local rkey = P .. 'run:' .. id
  local task_json = redis.call('HGET', rkey, 'task')
  local held = false
  if task_json and redis.call('HGET', rkey, '_qid') == qid then
    local queue = P .. 'queue:' .. cjson.decode(task_json)
    local pending = redis.call('XPENDING', queue, 'workers', qid, qid, 1)
    if #pending == 1 and pending[1][2] == consumer then
      redis.call('XCLAIM', queue, 'workers', consumer, 0, qid, 'JUSTID')
      held = true
      local reason = redis.call('HGET', rkey, '_cancel')
      if reason then cancels[#cancels + 1] = {id, reason} end
    end
  end
  if not held then lost[#lost + 1] = id end
end
return {lost, cancels}
"""

RELEASE = """
-- ARGV: P, consumer, id, ... Hands each unfinished run this consumer holds back to its queue
-- as a new entry, deliverable at once. Returns how many were handed back.
local P, consumer = ARGV[1], ARGV[2]
local released = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local rkey = P .. 'run:' .. id
  local qid = redis.call('HGET', rkey, '_qid')
  local task_json = redis.call('HGET', rkey, 'task')
  if qid and task_json then
    local queue = P .. 'queue:' .. cjson.decode(task_json)
    local pending = redis.call('XPENDING', queue, 'workers', qid, qid, 1)
    if #pending == 1 and pending[1][2] == consumer then
      redis.call('XACK', queue, 'workers', qid)
      redis.call('XDEL', queue, qid)
      redis.call('HSET', rkey, '_qid', redis.call('XADD', queue, '*', 'run', id))
      released = released + 1
    end
  end
end
return released
"""

DROP_ENTRY = """
-- ARGV: P, queue key, qid. Acks and deletes a queue entry that has nothing left to run.
redis.call('XACK', ARGV[2], 'workers', ARGV[3])
redis.call('XDEL', ARGV[2], ARGV[3])
return 1
"""

PRUNE = """
-- ARGV: P, finished before (Unix time), batch size. Deletes that many finished runs at most.
local P = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. ARGV[2],
                       'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local rkey = P .. 'run:' .. id
  local state = redis.call('HGET', rkey, 'state')
  local task_json = redis.call('HGET', rkey, 'task')
  if state and task_json then
    state = cjson.decode(state)
    redis.call('HINCRBY', P .. 'counts', state .. '\\t' .. task_json, -1)
    redis.call('ZREM', P .. 'state:' .. state, id)
  end
  redis.call('ZREM', P .. 'runs', id)
  redis.call('ZREM', P .. 'finished', id)
  redis.call('DEL', rkey, P .. 'log:' .. id)
end
return #ids
"""
