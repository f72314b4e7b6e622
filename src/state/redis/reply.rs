//! Replies of the scripts, turned back into the types the rules and the
//! pipeline use.

use std::time::{Duration, Instant};

use crate::reputation::{BanReason, Bucket};

/// A client's suspicion counters as `observe.lua` returns them.
pub(super) struct Tally {
    pub now: u64,
    pub since: u64,
    pub current: Bucket,
    pub previous: Bucket,
    pub bans: u8,
    pub banned_until: u64,
}

impl Tally {
    pub fn parse(n: &[i64]) -> Option<Self> {
        let [now, since, rest @ ..] = n else {
            return None;
        };
        let [a, f, l, lo, hi, pa, pf, pl, plo, phi, bans, until] = rest else {
            return None;
        };
        let count = |x: &i64| u32::try_from(*x).unwrap_or(u32::MAX);
        let bucket = |a, f, l: &i64, lo: &i64, hi: &i64| Bucket {
            attempts: count(a),
            failures: count(f),
            leaked_usernames: *l as u32,
            // Lua's bit library works on signed 32-bit halves.
            usernames: u64::from(*lo as u32) | (u64::from(*hi as u32) << 32),
        };
        Some(Self {
            now: u64::try_from(*now).ok()?,
            since: u64::try_from(*since).ok()?,
            current: bucket(a, f, l, lo, hi),
            previous: bucket(pa, pf, pl, plo, phi),
            bans: u8::try_from(*bans).unwrap_or(u8::MAX),
            banned_until: u64::try_from(*until).unwrap_or(0),
        })
    }
}

/// Redis' clock (milliseconds since the epoch) mapped onto this process'
/// `Instant`s.
pub(super) struct Clock {
    redis_now: u64,
    now: Instant,
}

impl Clock {
    pub fn at(redis_now: u64) -> Self {
        Self {
            redis_now,
            now: Instant::now(),
        }
    }

    pub fn instant(&self, redis_ms: u64) -> Instant {
        self.now + Duration::from_millis(redis_ms.saturating_sub(self.redis_now))
    }
}

pub(super) fn parse_reason(text: &str) -> BanReason {
    BanReason::from_name(text).unwrap_or(BanReason::Manual)
}
