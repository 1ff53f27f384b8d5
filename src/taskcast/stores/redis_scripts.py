"""The Lua scripts of the Redis store: every write is one script, so it is atomic in Redis.

Keys (``P`` is the store's key prefix, ``taskcast:`` by default):

* ``P run:ID``: the run record, a hash of ``Run`` fields, each JSON-encoded; plus private fields
  ``_qid`` (the run's entry in its task's queue stream, while it has one), ``_cancel`` (a cancel
  request for the worker holding the run), ``_w`` (the token of the last write, so a write
  retried after a lost reply is not applied twice), ``_sigs`` and ``_sig:NAME`` (the signals
  the run holds, sent and not yet taken by its task: in all, and of one name), ``_pending`` and
  ``_depfail`` (a run held for its ``after`` dependencies: how many have not ended, and the
  first that did not complete, with the error it gives), ``_lease`` and ``_limit`` (the scope
  and size of the deployment-wide limit it holds a place under);
* ``P log:ID``: the run's event log, a stream whose entry id ``SEQ-0`` is the event's ``seq``;
* ``P runs``: every run id (sorted set, lexical: ULIDs sort by time); ``P state:STATE``: the ids
  per state; ``P finished``: finished run ids scored by their finish time (for ``prune``);
  ``P counts``: a hash ``STATE<tab>TASK_JSON -> count``; ``P children:ID``: the ids of a run's
  children (sorted set, lexical); ``P finished:TASK``: the finished runs of one task, scored by
  finish time (for retention); ``P schedule:NAME``: a schedule's state (a hash: ``paused``,
  ``last_tick``, ``last_run``);
* ``P dependents:ID``: the runs held until run ``ID`` ends (a set, gone once it ended);
* ``P queue:TASK``: the work queue of a task, a stream read by the consumer group ``workers``
  (runs of priority 0); ``P queue@N:TASK`` the same for priority N (1 to 9): the claim takes
  the head with the smallest rank (``policies.rank``: its entry's time less ``AGEING`` per
  level), so a higher priority goes first and a lower one is never starved;
* ``P due``: the ``scheduled`` runs, scored by their start time (Unix seconds); ``P parked``:
  queued runs waiting for their rate (``rate:TASK:KEY`` holds the next start a key may have,
  ms of Redis's clock), scored by when they may go; ``P keyline:SCOPE``: queued runs waiting for
  a place of their key under ``concurrency_key`` (a list, in order). PROMOTE moves what is due
  back to its queue;
* ``P lease:SCOPE``: the runs holding a place under a deployment-wide limit (today a task's
  ``concurrency``; the scope is the task's name), scored by when the place expires unless the
  heartbeat renews it (ms, Redis time); ``P reclaim:SCOPE``: parents waiting to take their place
  back (they go before new runs); ``P freed:SCOPE``: a one-entry stream written whenever a place
  is freed (claim loops that found the scope full wait on it);
* channels ``P events`` (every appended event, in commit order: ``SEQ\\nAT\\n[ID,TYPE]\\nDATA``)
  and ``P control`` (for the worker holding a run: ``["cancel",ID,REASON]\\n`` and
  ``["signal",ID,SEQ]\\nAT\\nDATA``; for every worker: ``["freed",SCOPE,""]\\n``).

Whenever a run reaches a terminal state (``move``), in the same script: its dependents whose
last dependency this was are queued (or failed, by their ``after_policy``), and its children
still unfinished are cancelled (a queued one at once, a running one through its worker), each
step going on to the runs *it* ends in turn.
"""

from __future__ import annotations

from ..states import ENDED_IN_WORDS, GONE_IN_WORDS

GROUP = "workers"


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_ENDED_AS = ", ".join(f"{state.value} = {_lua_string(w)}" for state, w in ENDED_IN_WORDS.items())

_PRELUDE = (
    """
local P = ARGV[1]
local TERMINAL = {completed = true, failed = true, cancelled = true, timed_out = true}
local ENDED_AS = {"""
    + _ENDED_AS
    + """}
local GONE = """
    + _lua_string(GONE_IN_WORDS)
    + """

-- Append one event to run `id` (whose hash is `rkey`), publish it, return its seq.
local function add_event(id, rkey, etype, at, data)
  local seq = redis.call('HINCRBY', rkey, 'last_seq', 1)
  redis.call('XADD', P .. 'log:' .. id, seq .. '-0', 't', etype, 'a', at, 'd', data)
  redis.call('PUBLISH', P .. 'events',
             seq .. '\\n' .. at .. '\\n' .. cjson.encode({id, etype}) .. '\\n' .. data)
  return seq
end

-- The queue stream of `task` for runs of `priority` (0 to 9).
local function queue_key(task, priority)
  if priority and priority > 0 then return P .. 'queue@' .. priority .. ':' .. task end
  return P .. 'queue:' .. task
end

-- The queue stream of the run whose hash is `rkey` (by its task and priority).
local function queue_of(rkey, task)
  return queue_key(task, tonumber(redis.call('HGET', rkey, 'priority') or '0') or 0)
end

-- Acknowledge and delete the run's queue entry, if it has one.
local function ack(rkey, task)
  local qid = redis.call('HGET', rkey, '_qid')
  if qid then
    local queue = queue_of(rkey, task)
    redis.call('XACK', queue, 'workers', qid)
    redis.call('XDEL', queue, qid)
    redis.call('HDEL', rkey, '_qid')
  end
end

-- Give the run a new entry in its task's queue.
local function enqueue(id, rkey, task)
  redis.call('HSET', rkey, '_qid', redis.call('XADD', queue_of(rkey, task), '*', 'run', id))
end

-- Free the run's place under its deployment-wide limit, if it holds one, and say so.
local function free_lease(id, rkey)
  local scope = redis.call('HGET', rkey, '_lease')
  if not scope then return end
  redis.call('ZREM', P .. 'reclaim:' .. scope, id)
  if redis.call('ZREM', P .. 'lease:' .. scope, id) == 1 then
    redis.call('XADD', P .. 'freed:' .. scope, 'MAXLEN', '1', '*', 'f', '1')
    redis.call('PUBLISH', P .. 'control', cjson.encode({'freed', scope, ''}) .. '\\n')
    -- A key's line (concurrency_key): its head goes back to its queue, first in line.
    local head = redis.call('LPOP', P .. 'keyline:' .. scope)
    if head then
      local hkey = P .. 'run:' .. head
      redis.call('HSET', hkey, '_keyhead', '1', 'waiting_for', 'null')
      redis.call('HDEL', hkey, '_keyline')
      local task = cjson.decode(redis.call('HGET', hkey, 'task'))
      redis.call('HSET', hkey, '_qid', redis.call('XADD', queue_of(hkey, task), '*', 'run', head))
    end
  end
end

-- Take a queued run out of every waiting place (a rate's parking, a key's line).
local function unpark(id, rkey)
  redis.call('ZREM', P .. 'parked', id)
  local line = redis.call('HGET', rkey, '_keyline')
  if line then
    redis.call('LREM', P .. 'keyline:' .. line, 0, id)
    redis.call('HDEL', rkey, '_keyline')
  end
end

-- Move run `id` from state `current` to `target` (raw names), set the given fields, append
-- the announcing event; on a terminal state, index it as finished, ack its queue entry and
-- free its place under a limit. No cascade: see `move`.
local function set_state(id, rkey, current, target, etype, at, data, terminal, fields)
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
    redis.call('ZADD', P .. 'finished:' .. cjson.decode(task_json), finished_at, id)
    ack(rkey, cjson.decode(task_json))
    free_lease(id, rkey)
    redis.call('ZREM', P .. 'due', id)
    unpark(id, rkey)
    redis.call('HDEL', rkey, '_cancel', '_lease', '_limit', '_pending', '_depfail', '_keyhead')
  end
end

-- Cancel run `id` (state `current`) as a request: a queued or interrupted run now (returns
-- true), a running one through its worker (flag + message; returns false).
local function request_cancel(id, rkey, current, reason, at)
  if current == 'queued' or current == 'interrupted' or current == 'scheduled' then
    set_state(id, rkey, current, 'cancelled', 'cancelled', at, cjson.encode({reason = reason}),
              true, {'error', cjson.encode({type = 'Cancelled', message = reason}),
                     'finished_at', at})
    return true
  end
  if current == 'running' then
    redis.call('HSET', rkey, '_cancel', reason)
    redis.call('PUBLISH', P .. 'control', cjson.encode({'cancel', id, reason}) .. '\\n')
  end
  return false
end

-- The error a dependent fails with when `dep` ended in `state` (nil: its record is gone).
local function dependency_error(dep, state, error_json)
  local what = GONE
  if state then what = ENDED_AS[state] or ('ended ' .. state) end
  local message = 'dependency ' .. dep .. ' ' .. what
  if error_json then
    local ok, err = pcall(cjson.decode, error_json)
    if ok and type(err) == 'table' and type(err.message) == 'string' and err.message ~= '' then
      message = message .. ': ' .. err.message
    end
  end
  return {type = 'DependencyFailed', message = message}
end

-- A held run's dependencies have all ended: queue it, or fail it (returns true) if one did
-- not complete and its policy is "fail".
local function release(id, rkey, at)
  local failure = redis.call('HGET', rkey, '_depfail')
  redis.call('HDEL', rkey, '_pending', '_depfail')
  local policy = cjson.decode(redis.call('HGET', rkey, 'after_policy') or '"fail"')
  if failure and policy == 'fail' then
    local first = cjson.decode(failure)
    local error_json = cjson.encode(first[2])
    set_state(id, rkey, 'queued', 'failed', 'failed', at,
              '{"error":' .. error_json .. ',"dependency":' .. cjson.encode(first[1]) .. '}',
              true, {'error', error_json, 'finished_at', at})
    return true
  end
  enqueue(id, rkey, cjson.decode(redis.call('HGET', rkey, 'task')))
  return false
end

-- Note that dependency `dep` of held run `id` ended (state nil: gone) with `error_json`.
local function note_failure(rkey, dep, state, error_json)
  if state ~= 'completed' and redis.call('HEXISTS', rkey, '_depfail') == 0 then
    local failure = {dep, dependency_error(dep, state, error_json)}
    redis.call('HSET', rkey, '_depfail', cjson.encode(failure))
  end
end

-- What follows from run `id` reaching terminal `state`, and from every run that ends in turn:
-- its dependents are released (or failed), its unfinished children cancelled.
local function cascade(id, state, at)
  local work = {{id, state}}
  while #work > 0 do
    local item = table.remove(work)
    local ended, ended_state = item[1], item[2]
    local dkey = P .. 'dependents:' .. ended
    local dependents = redis.call('SMEMBERS', dkey)
    if #dependents > 0 then
      local error_json = redis.call('HGET', P .. 'run:' .. ended, 'error')
      for _, dependent in ipairs(dependents) do
        local rkey = P .. 'run:' .. dependent
        if redis.call('HEXISTS', rkey, '_pending') == 1 then
          note_failure(rkey, ended, ended_state, error_json)
          if redis.call('HINCRBY', rkey, '_pending', -1) <= 0 and release(dependent, rkey, at) then
            work[#work + 1] = {dependent, 'failed'}
          end
        end
      end
      redis.call('DEL', dkey)
    end
    local reason = nil
    for _, child in ipairs(redis.call('ZRANGE', P .. 'children:' .. ended, 0, -1)) do
      local ckey = P .. 'run:' .. child
      local current = redis.call('HGET', ckey, 'state')
      if current and not TERMINAL[cjson.decode(current)] then
        reason = reason or ('its parent ' .. ended .. ' '
                            .. (ENDED_AS[ended_state] or ended_state))
        if request_cancel(child, ckey, cjson.decode(current), reason, at) then
          work[#work + 1] = {child, 'cancelled'}
        end
      end
    end
  end
end

-- `set_state`, then, for a terminal state, the `cascade`.
local function move(id, rkey, current, target, etype, at, data, terminal, fields)
  set_state(id, rkey, current, target, etype, at, data, terminal, fields)
  if terminal then cascade(id, target, at) end
end

-- Redis's clock, in ms (one clock for the leases of every worker).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Redis's clock, in microseconds (rates: one start per interval, which may be below a ms).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""
)

_CREATE_ONE = """
local queue_or_hold

-- Index a new run `id` (hash written) as queued, add its `queued` event, then hold it for its
-- dependencies or queue it (`enqueue`: '1'). Returns its state after all that.
local function create(id, rkey, at, data, enqueue_it)
  local task_json = redis.call('HGET', rkey, 'task')
  local state = cjson.decode(redis.call('HGET', rkey, 'state'))
  redis.call('ZADD', P .. 'runs', 0, id)
  redis.call('ZADD', P .. 'state:' .. state, 0, id)
  redis.call('HINCRBY', P .. 'counts', state .. '\\t' .. task_json, 1)
  local parent = cjson.decode(redis.call('HGET', rkey, 'parent_id') or 'null')
  if type(parent) == 'string' then redis.call('ZADD', P .. 'children:' .. parent, 0, id) end
  add_event(id, rkey, state, at, data)
  if state == 'scheduled' then  -- PROMOTE queues it at its time
    local run_at = tonumber(cjson.decode(redis.call('HGET', rkey, 'run_at')))
    redis.call('ZADD', P .. 'due', run_at, id)
    redis.call('PUBLISH', P .. 'control', cjson.encode({'due', id, run_at}) .. '\\n')
    return 'scheduled'
  end
  return queue_or_hold(id, rkey, task_json, at, enqueue_it)
end

-- Queue the new (or due) queued run `id`, or hold it for its dependencies.
function queue_or_hold(id, rkey, task_json, at, enqueue_it)
  local after = cjson.decode(redis.call('HGET', rkey, 'after') or '[]')
  if #after == 0 then
    if enqueue_it then enqueue(id, rkey, cjson.decode(task_json)) end
    return 'queued'
  end
  local pending = 0
  for _, dep in ipairs(after) do
    local dkey = P .. 'run:' .. dep
    local state = redis.call('HGET', dkey, 'state')
    if not state then
      note_failure(rkey, dep, nil, nil)
    else
      state = cjson.decode(state)
      if TERMINAL[state] then
        note_failure(rkey, dep, state, redis.call('HGET', dkey, 'error'))
      else
        redis.call('SADD', P .. 'dependents:' .. dep, id)
        pending = pending + 1
      end
    end
  end
  redis.call('HSET', rkey, '_pending', pending)
  if pending == 0 and release(id, rkey, at) then
    cascade(id, 'failed', at)
    return 'failed'
  end
  return 'queued'
end
"""

CREATE_RUN = (
    _PRELUDE
    + _CREATE_ONE
    + """
-- ARGV: P, id, at, data, max_queued (0: no bound), enqueue (1/0), token, the run's fields as
--       one JSON array [field, value, ...] (one argument packs and sends faster than 36).
-- Returns {1, seq, state} created (held for its dependencies, queued, or failed by them),
-- {0, hash} the id exists, {-1} the queue is full.
local id = ARGV[2]
local rkey = P .. 'run:' .. id
if redis.call('EXISTS', rkey) == 1 then return {0, redis.call('HGETALL', rkey)} end
local max_queued = tonumber(ARGV[5])
if max_queued > 0 and redis.call('ZCARD', P .. 'state:queued') >= max_queued then
  return {-1}
end
redis.call('HSET', rkey, unpack(cjson.decode(ARGV[8])))
redis.call('HSET', rkey, '_w', ARGV[7])
local state = create(id, rkey, ARGV[3], ARGV[4], ARGV[6] == '1')
return {1, tonumber(redis.call('HGET', rkey, 'last_seq')), state}
"""
)

CREATE_RUNS = (
    _PRELUDE
    + _CREATE_ONE
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
  create(id, rkey, ARGV[2], ARGV[3], true)
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
-- ARGV: P, id, reason, at.
-- A queued (held for dependencies too) or interrupted run is cancelled here and now ({1}); a
-- running one is asked to stop (the request is kept on the run and published to the workers)
-- ({2}); {0, state} finished (its state as stored: JSON); {-1} unknown.
local id = ARGV[2]
local rkey = P .. 'run:' .. id
local current = redis.call('HGET', rkey, 'state')
if not current then return {-1} end
current = cjson.decode(current)
if TERMINAL[current] then return {0, cjson.encode(current)} end
if request_cancel(id, rkey, current, ARGV[3], ARGV[4]) then
  cascade(id, 'cancelled', ARGV[4])
  return {1}
end
return {2}
"""
)

CLAIM = (
    _PRELUDE
    + """
-- ARGV: P, consumer, visibility (ms), reclaim (1: also take entries idle longer than the
--       visibility timeout: the runs of dead workers), budget (runs in all), nudge stream key,
--       ageing (ms per level of priority),
--       then per task: name, wanted, limit (deployment-wide; 0: none), rate interval (us; 0:
--       none), rate key argument ('' none), its default (JSON), concurrency key argument (''
--       none), its default (JSON), per-key limit.
-- Takes up to `wanted` runs of each task (and `budget` in all), new ones by rank across the
-- task's priority queues (the head whose entry time less `ageing` per level is smallest); a
-- task with a limit only as many as it has free places (counting the parents waiting to take
-- theirs back), each taken run getting a place. A new run whose rate is spent is parked until
-- its turn (a start reserved for it); one whose key is full joins the key's line. Entries with
-- nothing left to run are dropped.
-- Returns {claims, waits}: claims = {task, entry id, hash} each; when there are none, waits =
-- {key, id} pairs to XREAD (BLOCK) from: the queues that were empty, the `freed` stream of a
-- task that was full, and the nudge stream.
local consumer, visibility = ARGV[2], tonumber(ARGV[3])
local budget = tonumber(ARGV[5])
local ageing = tonumber(ARGV[7])
local now = now_ms()
local claims, waits = {}, {}

local function last_id(key)
  local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #newest == 0 then return '0-0' end
  return newest[1][1]
end

-- The first entry of `queue` not yet delivered to the group (nil if none).
local function head_of(queue)
  local last = nil
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', queue)) do
    local name, delivered = nil, nil
    for j = 1, #group, 2 do
      if group[j] == 'name' then name = group[j + 1] end
      if group[j] == 'last-delivered-id' then delivered = group[j + 1] end
    end
    if name == 'workers' then last = delivered end
  end
  if last == nil then return nil end  -- no group yet: nothing was queued here through a create
  local next_entry = redis.call('XRANGE', queue, '(' .. last, '+', 'COUNT', 1)
  if #next_entry == 0 then return nil end
  return next_entry[1][1]
end

-- The JSON of argument `name` of the run (its default when it was left out).
local function argument(rkey, name, default)
  local ok, args = pcall(cjson.decode, redis.call('HGET', rkey, 'args') or '{}')
  if ok and type(args) == 'table' and args[name] ~= nil then return cjson.encode(args[name]) end
  return default
end

-- Leave the queue without running: the entry is acked; the run waits elsewhere.
local function step_aside(rkey, queue, entry_id, why)
  redis.call('XACK', queue, 'workers', entry_id)
  redis.call('XDEL', queue, entry_id)
  redis.call('HDEL', rkey, '_qid')
  redis.call('HSET', rkey, 'waiting_for', cjson.encode(why))
end

-- May the new run start now? Its rate (GCRA: the next start its key may have; a run that
-- may not start yet is parked with a start reserved for it) and its key's places.
local function admitted(spec, run_id, rkey, queue, entry_id)
  if spec.rate > 0 then
    if redis.call('HGET', rkey, '_parkhead') then
      redis.call('HDEL', rkey, '_parkhead')  -- its start was reserved when it was parked
    else
      local value = argument(rkey, spec.rate_key, spec.rate_default)
      local key = P .. 'rate:' .. spec.task .. ':' .. value
      local clock = now_us()
      local next_start = tonumber(redis.call('GET', key)) or clock
      local keep_ms = math.ceil((math.max(next_start, clock) + spec.rate - clock) / 1000) + 1000
      if next_start > clock then
        step_aside(rkey, queue, entry_id, 'rate_limit')
        redis.call('ZADD', P .. 'parked', math.ceil(next_start / 1000), run_id)
        redis.call('PUBLISH', P .. 'control',
                   cjson.encode({'due', run_id, next_start / 1000000}) .. '\\n')
        redis.call('SET', key, string.format('%.0f', next_start + spec.rate), 'PX', keep_ms)
        return false
      end
      redis.call('SET', key, string.format('%.0f', clock + spec.rate), 'PX', keep_ms)
    end
  end
  if spec.key_limit > 0 then
    local scope = spec.task .. '\\t' .. argument(rkey, spec.key, spec.key_default)
    local lkey, line = P .. 'lease:' .. scope, P .. 'keyline:' .. scope
    redis.call('ZREMRANGEBYSCORE', lkey, '-inf', now)
    local first = redis.call('HGET', rkey, '_keyhead')
    redis.call('HDEL', rkey, '_keyhead')
    local queued_behind = (not first) and redis.call('LLEN', line) > 0
    if queued_behind or redis.call('ZCARD', lkey) >= spec.key_limit then
      step_aside(rkey, queue, entry_id, 'concurrency')
      redis.call('HSET', rkey, '_keyline', scope)
      if first then redis.call('LPUSH', line, run_id) else redis.call('RPUSH', line, run_id) end
      return false
    end
    redis.call('ZADD', lkey, now + visibility, run_id)
    redis.call('HSET', rkey, '_lease', scope, '_limit', spec.key_limit)
  end
  return true
end

-- Take the delivered entries of `queue`; `new`: they pass the task's rate and key first.
local function take(spec, queue, entries, new)
  local taken = 0
  for _, entry in ipairs(entries) do
    local entry_id, fields = entry[1], entry[2] or {}
    local run_id = nil
    for j = 1, #fields, 2 do if fields[j] == 'run' then run_id = fields[j + 1] end end
    local rkey = run_id and (P .. 'run:' .. run_id)
    local state = rkey and redis.call('HGET', rkey, 'state')
    if state and not TERMINAL[cjson.decode(state)]
        and redis.call('HGET', rkey, '_qid') == entry_id then
      if not new or admitted(spec, run_id, rkey, queue, entry_id) then
        local scope = redis.call('HGET', rkey, '_lease')
        if not new and scope and spec.key_limit > 0 then  -- a dead worker's: keep its key place
          redis.call('ZADD', P .. 'lease:' .. scope, now + visibility, run_id)
        end
        if spec.limit > 0 then
          redis.call('ZADD', P .. 'lease:' .. spec.task, now + visibility, run_id)
          redis.call('HSET', rkey, '_lease', spec.task, '_limit', spec.limit)
        end
        claims[#claims + 1] = {spec.task, entry_id, redis.call('HGETALL', rkey)}
        taken = taken + 1
      end
    else  -- pruned, finished (its ack was lost with a worker) or a stale delivery
      redis.call('XACK', queue, 'workers', entry_id)
      redis.call('XDEL', queue, entry_id)
    end
  end
  return taken
end

local i = 8
while i + 8 <= #ARGV and budget > 0 do
  local spec = {
    task = ARGV[i], limit = tonumber(ARGV[i + 2]), rate = tonumber(ARGV[i + 3]),
    rate_key = ARGV[i + 4], rate_default = ARGV[i + 5], key = ARGV[i + 6],
    key_default = ARGV[i + 7], key_limit = tonumber(ARGV[i + 8]),
  }
  local wanted = tonumber(ARGV[i + 1])
  i = i + 9
  local queues = {}
  for priority = 0, 9 do
    local queue = queue_key(spec.task, priority)
    if redis.call('EXISTS', queue) == 1 then queues[#queues + 1] = {queue, priority} end
  end
  local room = math.min(wanted, budget)
  local full = false
  if spec.limit > 0 then
    local lkey, rkey = P .. 'lease:' .. spec.task, P .. 'reclaim:' .. spec.task
    redis.call('ZREMRANGEBYSCORE', lkey, '-inf', now)
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now)
    local free = spec.limit - redis.call('ZCARD', lkey) - redis.call('ZCARD', rkey)
    if free < room then room = free; full = true end
  end
  local taken = 0
  if room > 0 and ARGV[4] == '1' then
    for _, q in ipairs(queues) do
      if room - taken > 0 then
        local reply = redis.call('XAUTOCLAIM', q[1], 'workers', consumer, visibility, '0-0',
                                 'COUNT', room - taken)
        taken = taken + take(spec, q[1], reply[2], false)
      end
    end
  end
  -- New runs from the queue whose head ranks first, one at a time while two queues have some
  -- (a single queue: as many at once as there is room for).
  local heads = {}
  for _, q in ipairs(queues) do
    local head = q[1]  -- a single queue: no need to look at its head
    if #queues > 1 then head = head_of(q[1]) end
    if head then heads[#heads + 1] = {q[1], q[2], head} end
  end
  if #heads == 1 and room - taken > 0 then
    local reply = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', room - taken,
                             'STREAMS', heads[1][1], '>')
    if reply then taken = taken + take(spec, heads[1][1], reply[1][2], true) end
    heads = {}
  end
  local tries = 0
  while room - taken > 0 and #heads > 0 and tries < 1000 do
    tries = tries + 1
    local best, best_rank = nil, nil
    for index, h in ipairs(heads) do
      local rank = tonumber(string.match(h[3], '^(%d+)')) - h[2] * ageing
      if best_rank == nil or rank < best_rank then best, best_rank = index, rank end
    end
    local h = heads[best]
    local reply = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', 1,
                             'STREAMS', h[1], '>')
    if reply then taken = taken + take(spec, h[1], reply[1][2], true) end
    local following = head_of(h[1])
    if following then h[3] = following else table.remove(heads, best) end
  end
  budget = budget - taken
  if taken == 0 then
    if full and room <= 0 then
      local freed = P .. 'freed:' .. spec.task
      waits[#waits + 1] = {freed, last_id(freed)}
    else
      for _, q in ipairs(queues) do waits[#waits + 1] = {q[1], last_id(q[1])} end
    end
  end
end
if #claims > 0 then return {claims, {}} end
waits[#waits + 1] = {ARGV[6], last_id(ARGV[6])}
return {claims, waits}
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

HEARTBEAT = (
    _PRELUDE
    + """
-- ARGV: P, consumer, visibility (ms), id, qid, id, qid ... Extends the visibility of each
-- entry this consumer still holds, and the place under a limit its run holds or waits for.
-- Returns {lost ids, {id, cancel reason} ...} (a run that finished meanwhile is not lost).
local P, consumer, visibility = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + visibility
local lost, cancels = {}, {}
for i = 4, #ARGV, 2 do
  local id, qid = ARGV[i], ARGV[i + 1]
  local rkey = P .. 'run:' .. id
  local task_json = redis.call('HGET', rkey, 'task')
  local held = false
  if task_json and redis.call('HGET', rkey, '_qid') == qid then
    local queue = queue_of(rkey, cjson.decode(task_json))
    local pending = redis.call('XPENDING', queue, 'workers', qid, qid, 1)
    if #pending == 1 and pending[1][2] == consumer then
      redis.call('XCLAIM', queue, 'workers', consumer, 0, qid, 'JUSTID')
      held = true
      local reason = redis.call('HGET', rkey, '_cancel')
      if reason then cancels[#cancels + 1] = {id, reason} end
      local scope = redis.call('HGET', rkey, '_lease')
      if scope then
        redis.call('ZADD', P .. 'lease:' .. scope, 'XX', expires, id)
        redis.call('ZADD', P .. 'reclaim:' .. scope, 'XX', expires, id)
      end
    end
  end
  local state = task_json and redis.call('HGET', rkey, 'state')
  local finished = state and TERMINAL[cjson.decode(state)]
  if not held and not finished then lost[#lost + 1] = id end
end
return {lost, cancels}
"""
)

PROMOTE = (
    _PRELUDE
    + _CREATE_ONE
    + """
-- ARGV: P, now (Unix seconds, the caller's clock), at (the event time), limit.
-- Queues up to `limit` runs whose time came: `scheduled` runs due by `now` (state `queued`, a
-- `queued` event, then their queue or their dependencies), and queued runs parked for their
-- rate whose turn came by Redis's clock. Exactly once, whoever runs it: each leaves its set in
-- the same script. Returns {queued, seconds until the next one is due (-1: none)}.
local now, at, limit = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local queued = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', P .. 'due', id)
  local rkey = P .. 'run:' .. id
  local state = redis.call('HGET', rkey, 'state')
  if state and cjson.decode(state) == 'scheduled' then
    local task_json = redis.call('HGET', rkey, 'task')
    local run_at = redis.call('HGET', rkey, 'run_at')
    local data = '{"task":' .. task_json .. ',"run_at":' .. run_at .. '}'
    set_state(id, rkey, 'scheduled', 'queued', 'queued', at, data, false, {})
    if queue_or_hold(id, rkey, task_json, at, true) == 'failed' then
      cascade(id, 'failed', at)
    end
    queued = queued + 1
  end
end
local clock = now_ms()
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'parked', '-inf', clock,
                               'LIMIT', 0, limit)) do
  redis.call('ZREM', P .. 'parked', id)
  local rkey = P .. 'run:' .. id
  local state = redis.call('HGET', rkey, 'state')
  if state and cjson.decode(state) == 'queued' then
    redis.call('HSET', rkey, 'waiting_for', 'null', '_parkhead', '1')
    enqueue(id, rkey, cjson.decode(redis.call('HGET', rkey, 'task')))
    queued = queued + 1
  end
end
local next_wait = -1
local due = redis.call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')
if #due > 0 then next_wait = math.max(0, tonumber(due[2]) - now) end
local parked = redis.call('ZRANGE', P .. 'parked', 0, 0, 'WITHSCORES')
if #parked > 0 then
  local wait = math.max(0, (tonumber(parked[2]) - clock) / 1000)
  if next_wait < 0 or wait < next_wait then next_wait = wait end
end
return {queued, tostring(next_wait)}
"""
)

RELEASE = (
    _PRELUDE
    + """
-- ARGV: P, consumer, id, ... Hands each unfinished run this consumer holds back to its queue
-- as a new entry, deliverable at once, freeing its place under a limit. Returns how many.
local consumer = ARGV[2]
local released = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local rkey = P .. 'run:' .. id
  local qid = redis.call('HGET', rkey, '_qid')
  local task_json = redis.call('HGET', rkey, 'task')
  if qid and task_json then
    local queue = queue_of(rkey, cjson.decode(task_json))
    local pending = redis.call('XPENDING', queue, 'workers', qid, qid, 1)
    if #pending == 1 and pending[1][2] == consumer then
      redis.call('XACK', queue, 'workers', qid)
      redis.call('XDEL', queue, qid)
      free_lease(id, rkey)
      redis.call('HDEL', rkey, '_lease', '_limit')
      enqueue(id, rkey, cjson.decode(task_json))
      released = released + 1
    end
  end
end
return released
"""
)

LEND = (
    _PRELUDE
    + """
-- ARGV: P, id. The run waits for its children: its place under a limit is free for others
-- meanwhile (it keeps the scope, to take a place back with TAKE_BACK).
free_lease(ARGV[2], P .. 'run:' .. ARGV[2])
return 1
"""
)

TAKE_BACK = (
    _PRELUDE
    + """
-- ARGV: P, id, visibility (ms), force (1/0). A parent done waiting takes a place under its
-- limit back: {1} taken (or it needs none), {0} none free (it is registered as reclaiming, so
-- new runs leave it the next place). `force` takes one even over the limit.
local id, visibility = ARGV[2], tonumber(ARGV[3])
local rkey = P .. 'run:' .. id
local scope = redis.call('HGET', rkey, '_lease')
if not scope then return 1 end
local limit = tonumber(redis.call('HGET', rkey, '_limit')) or 1
local lkey, rcl = P .. 'lease:' .. scope, P .. 'reclaim:' .. scope
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', lkey, '-inf', now)
redis.call('ZREMRANGEBYSCORE', rcl, '-inf', now)
if redis.call('ZSCORE', lkey, id) then return 1 end
if ARGV[4] == '1' or redis.call('ZCARD', lkey) < limit then
  redis.call('ZADD', lkey, now + visibility, id)
  redis.call('ZREM', rcl, id)
  return 1
end
redis.call('ZADD', rcl, now + visibility, id)
return 0
"""
)

_DELETE_RUN = """
local P = ARGV[1]

-- Delete a finished run: its record, its log, and its place in every index.
local function delete_run(id)
  local rkey = P .. 'run:' .. id
  local state = redis.call('HGET', rkey, 'state')
  local task_json = redis.call('HGET', rkey, 'task')
  if state and task_json then
    state = cjson.decode(state)
    redis.call('HINCRBY', P .. 'counts', state .. '\\t' .. task_json, -1)
    redis.call('ZREM', P .. 'state:' .. state, id)
    redis.call('ZREM', P .. 'finished:' .. cjson.decode(task_json), id)
  end
  local parent = cjson.decode(redis.call('HGET', rkey, 'parent_id') or 'null')
  if type(parent) == 'string' then redis.call('ZREM', P .. 'children:' .. parent, id) end
  redis.call('ZREM', P .. 'runs', id)
  redis.call('ZREM', P .. 'finished', id)
  redis.call('DEL', rkey, P .. 'log:' .. id, P .. 'children:' .. id)
end
"""

PRUNE = (
    _DELETE_RUN
    + """
-- ARGV: P, finished before (Unix time), batch size. Deletes that many finished runs at most.
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. ARGV[2],
                       'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do delete_run(id) end
return #ids
"""
)

PRUNE_TASK = (
    _DELETE_RUN
    + """
-- ARGV: P, task, finished before ('' for none), keep ('' for none), limit, spare id ...
-- Deletes up to `limit` finished runs of the task, oldest finished first: those finished before
-- the time, and those beyond the `keep` newest; never a spare one. Returns how many.
local key = P .. 'finished:' .. ARGV[2]
local limit = tonumber(ARGV[5])
local spare = {}
for i = 6, #ARGV do spare[ARGV[i]] = true end
-- Both rules doom a prefix of the set (oldest finished first): the longer prefix goes.
local doomed = 0
if ARGV[4] ~= '' then doomed = redis.call('ZCARD', key) - tonumber(ARGV[4]) end
if ARGV[3] ~= '' then
  doomed = math.max(doomed, redis.call('ZCOUNT', key, '-inf', '(' .. ARGV[3]))
end
local candidates = {}
if doomed > 0 then
  candidates = redis.call('ZRANGE', key, 0, math.min(doomed, limit + #ARGV - 5) - 1)
end
local deleted = 0
for _, id in ipairs(candidates) do
  if deleted >= limit then break end
  if not spare[id] then
    delete_run(id)
    deleted = deleted + 1
  end
end
return deleted
"""
)

RECORD_TICK = """
-- ARGV: P, name, tick ('' for a trigger), run id. Keeps the latest tick only.
local key = ARGV[1] .. 'schedule:' .. ARGV[2]
if ARGV[3] == '' then
  redis.call('HSET', key, 'last_run', ARGV[4])
  return 1
end
local last = tonumber(redis.call('HGET', key, 'last_tick'))
if last == nil or tonumber(ARGV[3]) > last then
  redis.call('HSET', key, 'last_tick', ARGV[3], 'last_run', ARGV[4])
  return 1
end
return 0
"""

TIMES = """
-- ARGV: P, id, ... Returns task, state, created_at, started_at, finished_at of each run, flat
-- (JSON values as stored; false for a run that is gone), for ``activity``: one reply per page
-- of runs instead of one per run.
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local values = redis.call('HMGET', P .. 'run:' .. ARGV[i],
                            'task', 'state', 'created_at', 'started_at', 'finished_at')
  for j = 1, 5 do out[#out + 1] = values[j] end
end
return out
"""
