//! Attempt log in Redis, shared by every replica. Per key two sorted sets scored by time in
//! microseconds (exact in a double for centuries): `throttle:<key>:pending` (attempts in flight, by start) and
//! `throttle:<key>:failed` (by when the failure was recorded), expiring with the window.
//!
//! Each operation is one Lua script, so a reservation over two keys is one atomic step for
//! every replica, and every time comes from Redis's own clock (replica clocks may differ).

use std::{sync::Arc, time::Duration};

use redis::Script;

use super::{AttemptLog, KeyLimit, Outcome, Reserved, Ticket};
use crate::store::RedisStore;

/// KEYS: pending and failed set of each key, in pairs. ARGV: window µs, member, then the limit
/// and the in-flight cap (0 = none) of each key. Answers {1, now} when granted, {0, µs until
/// allowed} when refused (at most a second while attempts are in flight: they may settle as
/// successes), {2, µs} when a key has its cap of attempts in flight.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local pending, failed = KEYS[i], KEYS[i + 1]
  redis.call('ZREMRANGEBYSCORE', pending, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', failed, '-inf', now - window)
  local limit = tonumber(ARGV[2 + i])
  local in_flight_cap = tonumber(ARGV[3 + i])
  local in_flight = redis.call('ZCARD', pending)
  if in_flight_cap > 0 and in_flight >= in_flight_cap then
    return {2, 1000000}
  end
  local count = in_flight + redis.call('ZCARD', failed)
  if count >= limit then
    -- The (count - limit + 1)th oldest attempt must leave the window first.
    local n = count - limit + 1
    local times = {}
    for _, set in ipairs({pending, failed}) do
      local entries = redis.call('ZRANGE', set, 0, n - 1, 'WITHSCORES')
      for j = 2, #entries, 2 do table.insert(times, tonumber(entries[j])) end
    end
    table.sort(times)
    local wait = (times[n] or now) + window - now
    if wait < 0 then wait = 0 end
    if redis.call('ZCARD', pending) > 0 and wait > 1000000 then wait = 1000000 end
    return {0, wait}
  end
end
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
end
return {1, now}
";

/// KEYS: as RESERVE. ARGV: window µs, member, outcome (`failed`, `succeeded`, `cancelled`),
/// the index (1-based pair) whose failures a success clears or 0, and the attempt's start.
const SETTLE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local member, outcome, clear, started = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
for i = 1, #KEYS, 2 do
  local pending, failed = KEYS[i], KEYS[i + 1]
  redis.call('ZREM', pending, member)
  if outcome == 'failed' then
    redis.call('ZADD', failed, now, member)
    redis.call('PEXPIRE', failed, math.ceil(window / 1000))
  elseif outcome == 'succeeded' and clear == (i + 1) / 2 then
    redis.call('ZREMRANGEBYSCORE', failed, '-inf', '(' .. started)
  end
end
return 1
";

pub struct RedisAttemptLog {
    redis: Arc<RedisStore>,
    reserve: Script,
    settle: Script,
}

impl RedisAttemptLog {
    pub fn new(redis: Arc<RedisStore>) -> Self {
        Self { redis, reserve: Script::new(RESERVE), settle: Script::new(SETTLE) }
    }

    /// The pending and failed set names of every key, in pairs.
    fn set_names(&self, keys: &[KeyLimit]) -> Vec<String> {
        keys.iter()
            .flat_map(|key| {
                [
                    self.redis.key(&format!("throttle:{}:pending", key.key)),
                    self.redis.key(&format!("throttle:{}:failed", key.key)),
                ]
            })
            .collect()
    }
}

fn micros(window: Duration) -> i64 {
    i64::try_from(window.as_micros()).unwrap_or(i64::MAX)
}

#[tonic::async_trait]
impl AttemptLog for RedisAttemptLog {
    async fn reserve(&self, keys: &[KeyLimit], window: Duration) -> Option<Reserved> {
        // Unique members: two attempts in the same microsecond are two attempts.
        let member = uuid::Uuid::new_v4().simple().to_string();
        let mut invocation = self.reserve.prepare_invoke();
        for name in self.set_names(keys) {
            invocation.key(name);
        }
        invocation.arg(micros(window)).arg(&member);
        for key in keys {
            invocation.arg(key.limit).arg(key.max_in_flight.unwrap_or(0));
        }
        let (answer, value): (i64, i64) =
            self.redis.run("throttle reserve", async |c| invocation.invoke_async(c).await).await?;
        let wait = Duration::from_micros(u64::try_from(value).unwrap_or(0));
        Some(match answer {
            1 => Reserved::Granted(Ticket { member, started_us: value }),
            2 => Reserved::Refused { retry_after: wait, in_flight: true },
            _ => Reserved::Refused { retry_after: wait, in_flight: false },
        })
    }

    async fn settle(&self, keys: &[KeyLimit], ticket: &Ticket, outcome: Outcome, window: Duration) -> Option<()> {
        let (outcome, clear) = match outcome {
            Outcome::Failed => ("failed", 0),
            Outcome::Succeeded { clear_failures_of } => ("succeeded", clear_failures_of.map_or(0, |index| index + 1)),
            Outcome::Cancelled => ("cancelled", 0),
        };
        let mut invocation = self.settle.prepare_invoke();
        for name in self.set_names(keys) {
            invocation.key(name);
        }
        invocation.arg(micros(window)).arg(&ticket.member).arg(outcome).arg(clear).arg(ticket.started_us);
        let _: i64 = self.redis.run("throttle settle", async |c| invocation.invoke_async(c).await).await?;
        Some(())
    }
}
