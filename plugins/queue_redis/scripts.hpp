#pragma once
// The reliable queue's Lua scripts. Each runs atomically in redis; together they make sure that a
// job, once enqueued, ends exactly once as done or failed (COMPLETE and the reaper's fail both check
// and change `state` in the same step as they publish the result).
//
// Keys under the prefix P (default "phasekit:"):
//   P jobs                 list of job ids waiting (LPUSH in, BLMOVE out of the right end)
//   P job:<id>             hash: user, session, payload, timeout, attempt, state (queued|running|done|failed),
//                          worker, deadline, channel
//   P processing:<worker>  list of the ids a worker has taken
//   P workers              set of worker ids;  P worker:<id>  its heartbeat (expires when it stops beating)
//   P lock:<session>       the id of the job of that session that runs now (one at a time per session)
//   P stats                hash of counters (done, failed, redelivered)
//   P server               the run_id of the redis that served this data set last: another one
//                          restarted and loaded it (kRecover)
//   P result:<id>          an ended job's result envelope (up to kResultKeepMost bytes), kept
//                          kResultKeepMs: pub/sub delivers at most once, so a subscriber that was away
//                          when it was published asks for it again
//   P session:<id>         pub/sub channel of a session's events
#include <string>

#include "guarded.hpp"

namespace phasekit::queue_redis::scripts {

/// How long an ended job's result stays in redis for a subscriber that missed its publication (an
/// orchestrator reconnecting after a redis restart or a partition). Redis holds at most
/// results per second × this × result size for it.
inline constexpr int kResultKeepMs = 60000;
/// Larger results are not kept (a call that missed one fails with UNAVAILABLE instead): redis holds at
/// most results per second × 60 s × 64 KiB for them, and an account's republish of a batch of 100
/// stays under the 32 MB pub/sub output buffer limit.
inline constexpr int kResultKeepMost = 64 * 1024;

/// KEYS none; ARGV prefix, id, user, session, payload, timeout_ms, channel → 1 queued, 0 already known.
inline const redis_plugins::Script kEnqueue(R"lua(
local p, id = ARGV[1], ARGV[2]
local jk = p .. 'job:' .. id
if redis.call('EXISTS', jk) == 1 then return 0 end
if redis.call('EXISTS', p .. 'server') == 0 then
  redis.call('SET', p .. 'server', string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '')
end
redis.call('HSET', jk, 'user', ARGV[3], 'session', ARGV[4], 'payload', ARGV[5], 'timeout', ARGV[6],
           'attempt', 1, 'state', 'queued', 'channel', ARGV[7])
redis.call('LPUSH', p .. 'jobs', id)
return 1
)lua");

/// What the scripts share: put a running job back at the front of the queue, end it (keeping its
/// result kResultKeepMs), or fail it (publishing its result when it has a channel).
inline const std::string kHelpers = "local RESULT_KEEP_MS = " + std::to_string(kResultKeepMs) +
                                    "\nlocal RESULT_KEEP_MOST = " + std::to_string(kResultKeepMost) + "\n" + R"lua(
local function unlock(p, id, session)
  local lock = p .. 'lock:' .. session
  if redis.call('GET', lock) == id then redis.call('DEL', lock) end
end
local function requeue(p, id, j, bump)
  unlock(p, id, j.session)
  redis.call('HSET', p .. 'job:' .. id, 'state', 'queued', 'worker', '', 'attempt', j.attempt + bump)
  redis.call('RPUSH', p .. 'jobs', id)
end
local function ended(p, id, outcome, envelope)
  redis.call('HSET', p .. 'job:' .. id, 'state', outcome)
  redis.call('PEXPIRE', p .. 'job:' .. id, 3600000)
  redis.call('HINCRBY', p .. 'stats', outcome, 1)
  if envelope and envelope ~= '' and #envelope <= RESULT_KEEP_MOST then
    redis.call('SET', p .. 'result:' .. id, envelope, 'PX', RESULT_KEEP_MS)
  end
end
local function fail(p, id, j, code, message)
  unlock(p, id, j.session)
  local result = cjson.encode({callId = id, exitCode = cjson.null, output = '', truncated = false, durationMs = 0,
                               error = {code = code, message = message}})
  local envelope = cjson.encode({t = 'r', j = id, s = j.session, d = result})
  ended(p, id, 'failed', envelope)
  if j.channel ~= '' then
    redis.call('PUBLISH', j.channel, envelope)
  end
end
local function job(p, id)
  local r = redis.call('HMGET', p .. 'job:' .. id, 'state', 'worker', 'attempt', 'deadline', 'session', 'channel')
  return {state = r[1], worker = r[2] or '', attempt = tonumber(r[3]) or 1, deadline = tonumber(r[4]) or 0,
          session = r[5] or '', channel = r[6] or ''}
end
)lua";

/// ARGV prefix, id, worker, grace_ms → {1, user, session, payload, timeout, attempt} to run it;
/// {2} when another job of its session runs (it goes to the back of the queue); {0} to skip it (gone,
/// already ended, or a malformed record, which is failed and its result published when it can be).
inline const redis_plugins::Script kClaim(kHelpers + R"lua(
local p, id, w = ARGV[1], ARGV[2], ARGV[3]
local jk = p .. 'job:' .. id
local proc = p .. 'processing:' .. w
local j = redis.call('HMGET', jk, 'user', 'session', 'payload', 'timeout', 'attempt', 'state', 'channel')
if j[6] ~= 'queued' then
  redis.call('LREM', proc, 1, id)
  return {0}
end
local timeout = tonumber(j[4])
if not timeout or not j[2] or not j[7] then
  -- A job hash that is not one of ours (written by hand, or by another version): it ends, failed.
  redis.call('LREM', proc, 1, id)
  fail(p, id, {session = j[2] or '', channel = j[7] or ''}, 'BAD_REQUEST', 'malformed job record')
  return {0}
end
local lock = p .. 'lock:' .. j[2]
local held = redis.call('GET', lock)
if held and held ~= id then
  redis.call('LREM', proc, 1, id)
  redis.call('LPUSH', p .. 'jobs', id)
  return {2}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', lock, id, 'PX', timeout + tonumber(ARGV[4]) + 60000)
redis.call('HSET', jk, 'state', 'running', 'worker', w, 'deadline', now + timeout + tonumber(ARGV[4]))
return {1, j[1] or '', j[2], j[3] or '', j[4], j[5] or '1'}
)lua");

/// ARGV prefix, id, worker, outcome (done|failed), envelope, attempt → 1 completed now, 0 not this
/// worker's job any more (the reaper gave it to another, or it already ended). A job redis says is
/// queued under the attempt this worker ran was claimed in writes a redis restart lost (a redelivery
/// would have raised its attempt): the run ends it, and it leaves the queue instead of running again.
/// A record whose attempt is above this run's was raised by kRecover (another worker ran the job
/// under this run's attempt too): the envelope carries the record's attempt as "a", so the user's
/// result says it was redelivered.
inline const redis_plugins::Script kComplete(kHelpers + R"lua(
local p, id, w = ARGV[1], ARGV[2], ARGV[3]
local j = job(p, id)
if j.state == 'queued' and j.attempt == tonumber(ARGV[6]) then
  redis.call('LREM', p .. 'jobs', 0, id)
elseif j.state ~= 'running' or j.worker ~= w then
  return 0
end
local envelope = ARGV[5]
if j.attempt > (tonumber(ARGV[6]) or 1) then
  local ok, e = pcall(cjson.decode, envelope)
  if ok and type(e) == 'table' then
    e.a = j.attempt
    envelope = cjson.encode(e)
  end
end
redis.call('LREM', p .. 'processing:' .. w, 0, id)
unlock(p, id, j.session)
ended(p, id, ARGV[4], envelope)
redis.call('PUBLISH', j.channel, envelope)
return 1
)lua");

/// ARGV prefix, max_attempts → {redelivered, failed}. Jobs of a worker whose heartbeat expired go back
/// to the front of the queue (attempt + 1), or fail after max_attempts; a job running past its
/// deadline (JOB_TIMEOUT_MS plus grace) on a live worker fails with TIMEOUT.
inline const redis_plugins::Script kReap(kHelpers + R"lua(
local p, maxa = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local redelivered, failed = 0, 0
for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  local alive = redis.call('EXISTS', p .. 'worker:' .. w) == 1
  local proc = p .. 'processing:' .. w
  for _, id in ipairs(redis.call('LRANGE', proc, 0, -1)) do
    local j = job(p, id)
    local mine = j.state == 'running' and j.worker == w
    if not alive then
      redis.call('LREM', proc, 1, id)
      if mine and j.attempt < maxa then
        requeue(p, id, j, 1)
        redelivered = redelivered + 1
      elseif mine then
        fail(p, id, j, 'UNAVAILABLE', 'its worker stopped ' .. j.attempt .. ' times while running it')
        failed = failed + 1
      elseif j.state == 'queued' then
        redis.call('RPUSH', p .. 'jobs', id)  -- taken but never claimed
      end
    elseif mine and j.deadline > 0 and j.deadline < now then
      redis.call('LREM', proc, 1, id)
      fail(p, id, j, 'TIMEOUT', 'the job ran past JOB_TIMEOUT_MS')
      failed = failed + 1
    end
  end
  if not alive then
    redis.call('DEL', proc)
    redis.call('SREM', p .. 'workers', w)
  end
end
if redelivered > 0 then redis.call('HINCRBY', p .. 'stats', 'redelivered', redelivered) end
return {redelivered, failed}
)lua");

/// ARGV prefix, worker, lease_ms, n, m, then (id, attempt) of the n jobs it runs now under this
/// incarnation, then (id, attempt) of m jobs it ran or runs under an incarnation fenced since, then
/// (id, session, outcome, worker, envelope) of each job it completed lately → {handed back, replayed,
/// reclaimed, doubled, doubled and already ended, redis run_id, redis uptime in seconds, restarted}. Run before a
/// worker takes again after a take or claim whose reply was lost, or after its connection to redis was
/// down:
///  * replay: a completion a redis restart lost (its last writes are gone) leaves its job running on
///    this worker, or queued (its claim lost too), or with no record: it ends here as it ended, its
///    result kept (not published again: it went out when the job ended; a subscriber that missed it
///    asks with kAccount). A job another worker runs now is left to that run;
///  * reclaim: a job it runs that redis says is queued under the same attempt lost its claim with a
///    restart: it is claimed again, off the queue, before another worker takes it and runs it twice
///    (a redelivery raises the attempt: a fenced run is never reclaimed);
///  * doubled: a job it runs (or ran, fenced) that another worker claimed under the same attempt (the
///    restart lost this worker's claim, and the other took the job before this one could reclaim it)
///    runs twice: its record's attempt goes up and it counts as redelivered, so the run that ends it
///    tells the user (kComplete, and Job::confirm for the history). One that another worker already
///    ended under that attempt goes up too, and a notice (envelope t = 'n') tells the session; a
///    fenced run's job still queued under its attempt goes up too (the command may have run);
///  * recover: every id of this incarnation's processing list that it does not run (taken but never
///    claimed, or claimed without the worker hearing of it) goes back to the front of the queue,
///    attempt unchanged (it never ran).
/// One script, so nothing can hand a job back between the steps. Its reply ends with redis's run_id,
/// its uptime, and 1 when the data set was loaded by a restart less than lease_ms ago (P server names
/// the redis that served it last): the worker then holds off taking (RedisQueue::recover()).
inline const redis_plugins::Script kRecover(kHelpers + R"lua(
local p, w, lease, n, m = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local proc = p .. 'processing:' .. w
local mine = {}
local reclaimed, doubled, ended_twice = 0, 0, 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Another worker: not one of this process's incarnations (<base>:<epoch>), whose fenced runs the
-- reaper redelivers itself.
local base = string.match(w, '^(.*:)%d+$') or w
local function another(worker)
  return worker ~= '' and string.sub(worker, 1, #base) ~= base
end
local function raise(id, j)
  redis.call('HSET', p .. 'job:' .. id, 'attempt', j.attempt + 1)
  redis.call('HINCRBY', p .. 'stats', 'redelivered', 1)
  doubled = doubled + 1
end
for i = 6, 5 + 2 * (n + m), 2 do
  local id, attempt, fenced = ARGV[i], tonumber(ARGV[i + 1]), i > 5 + 2 * n
  local j = job(p, id)
  if not fenced then mine[id] = true end
  if j.attempt ~= attempt then
    -- redelivered (or ended under another attempt) already: nothing of this run's to account for
  elseif j.state == 'queued' and not fenced then
    local timeout = tonumber(redis.call('HGET', p .. 'job:' .. id, 'timeout')) or 0
    redis.call('LREM', p .. 'jobs', 0, id)
    redis.call('LREM', proc, 0, id)
    redis.call('LPUSH', proc, id)
    redis.call('HSET', p .. 'job:' .. id, 'state', 'running', 'worker', w, 'deadline', now + timeout + lease)
    redis.call('SET', p .. 'lock:' .. j.session, id, 'NX', 'PX', timeout + lease + 60000)
    reclaimed = reclaimed + 1
  elseif j.state == 'queued' or (j.state == 'running' and another(j.worker)) then
    raise(id, j)
  elseif (j.state == 'done' or j.state == 'failed') and another(j.worker) then
    -- Its result went out under this attempt: the user hears of the second run now.
    redis.call('HSET', p .. 'job:' .. id, 'attempt', j.attempt + 1)
    redis.call('HINCRBY', p .. 'stats', 'redelivered', 1)
    if j.channel ~= '' then
      redis.call('PUBLISH', j.channel, cjson.encode({t = 'n', j = id, s = j.session,
                                                     d = cjson.encode({callId = id, attempt = j.attempt + 1})}))
    end
    ended_twice = ended_twice + 1
  end
end
local replayed = 0
for i = 6 + 2 * (n + m), #ARGV - 4, 5 do
  local id, session, outcome, by, envelope = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local j = job(p, id)
  local ended_already = j.state == 'done' or j.state == 'failed'
  local another_runs = j.state == 'running' and j.worker ~= by
  if not ended_already and not another_runs then
    redis.call('HSET', p .. 'job:' .. id, 'session', session, 'channel', p .. 'session:' .. session)
    redis.call('LREM', p .. 'jobs', 0, id)
    redis.call('LREM', p .. 'processing:' .. by, 0, id)
    redis.call('LREM', p .. 'processing:' .. w, 0, id)
    unlock(p, id, session)
    ended(p, id, outcome, envelope)
    replayed = replayed + 1
  end
end
local handed = 0
for _, id in ipairs(redis.call('LRANGE', proc, 0, -1)) do
  if not mine[id] then
    local j = job(p, id)
    redis.call('LREM', proc, 1, id)
    if j.state == 'running' and j.worker == w then
      requeue(p, id, j, 0)
      handed = handed + 1
    elseif j.state == 'queued' then
      redis.call('RPUSH', p .. 'jobs', id)
      handed = handed + 1
    end
  end
end
local info = redis.call('INFO', 'server')
local run_id = string.match(info, 'run_id:(%x+)') or ''
local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0
-- The data set names the redis that last served it: another one loaded it after a restart. Until that
-- one has been up for a lease, no worker takes, not even one started since (it cannot tell otherwise).
local served_by = redis.call('GET', p .. 'server')
local restarted = 0
if served_by and served_by ~= run_id and up * 1000 < lease then
  restarted = 1
elseif served_by ~= run_id then
  redis.call('SET', p .. 'server', run_id)
end
return {handed, replayed, reclaimed, doubled, ended_twice, run_id, up, restarted}
)lua");

/// ARGV prefix, worker → number of jobs handed back: a worker stopping before its jobs finished puts
/// them back at the front of the queue (same attempt) and leaves.
inline const redis_plugins::Script kHandBack(kHelpers + R"lua(
local p, w = ARGV[1], ARGV[2]
local proc = p .. 'processing:' .. w
local n = 0
for _, id in ipairs(redis.call('LRANGE', proc, 0, -1)) do
  local j = job(p, id)
  if (j.state == 'running' and j.worker == w) then
    requeue(p, id, j, 0)
    n = n + 1
  elseif j.state == 'queued' then
    redis.call('RPUSH', p .. 'jobs', id)
  end
end
redis.call('DEL', proc, p .. 'worker:' .. w)
redis.call('SREM', p .. 'workers', w)
return n
)lua");

/// ARGV prefix, then id, session pairs: the jobs an orchestrator enqueued and has no result of, asked
/// after its subscriber reconnected (pub/sub delivers at most once, and a redis restart loses up to the
/// last second of writes) → {lost, republished, gone ids...}.
///  * no record: redis lost the job with the writes it forgot. It ends failed (UNAVAILABLE), its result
///    published, so the call ends instead of waiting forever;
///  * ended, result kept: published again (subscribers drop a result they already delivered);
///  * ended, result no longer kept: its id is returned, for the caller to fail the call itself;
///  * queued or running: still on its way, nothing to do.
inline const redis_plugins::Script kAccount(kHelpers + R"lua(
local p = ARGV[1]
local lost, republished, gone = 0, 0, {}
for i = 2, #ARGV - 1, 2 do
  local id, session = ARGV[i], ARGV[i + 1]
  local j = job(p, id)
  if not j.state then
    local channel = p .. 'session:' .. session
    redis.call('HSET', p .. 'job:' .. id, 'session', session, 'channel', channel, 'attempt', 1)
    fail(p, id, {session = session, channel = channel}, 'UNAVAILABLE',
         'the job queue lost this job: redis restarted without its last writes')
    lost = lost + 1
  elseif j.state == 'done' or j.state == 'failed' then
    local envelope = redis.call('GET', p .. 'result:' .. id)
    if envelope then
      redis.call('PUBLISH', j.channel, envelope)
      republished = republished + 1
    else
      gone[#gone + 1] = id
    end
  end
end
local out = {lost, republished}
for _, id in ipairs(gone) do out[#out + 1] = id end
return out
)lua");

}  // namespace phasekit::queue_redis::scripts
