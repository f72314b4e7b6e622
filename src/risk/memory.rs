//! What risk remembers between attempts, in this process and bounded: the
//! usernames that logged in successfully here, and recent successes and
//! failures per client and per subnet.
//!
//! Each table is an LRU map with a hard cap (`max_tracked_clients`); over it
//! the least recently seen go first, so a spray of addresses or usernames
//! costs memory once and never grows it. Usernames are
//! [`UsernameKey`]s, keyed hashes, never names. The per-network counts are
//! a fixed window (`[suspicion] window`): coarse, but two integers per key.
//! A std `Mutex` is enough: each call holds it for a map lookup, never
//! across an `await`. With `backend = "redis"` the state keeps the same
//! counts for every replica ([`crate::state::Seen`]), read through
//! [`shared_history`]; these tables then answer only when Redis does not.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lru::LruCache;

use super::History;
use crate::config::Config;
use crate::rate_limit::{subnet_of, UsernameKey};
use crate::state::Seen;

/// Failures in a window before a client's history counts as failing.
const CLIENT_MIN_FAILURES: u32 = 5;
/// The same for a subnet, where many customers share the count.
const SUBNET_MIN_FAILURES: u32 = 20;

/// Successes and failures in the current window.
#[derive(Debug, Clone, Copy)]
struct Tally {
    since: Instant,
    successes: u32,
    failures: u32,
}

/// The bounded tables. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RiskMemory {
    window: Duration,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    succeeded: Mutex<LruCache<UsernameKey, ()>>,
    clients: Mutex<LruCache<IpAddr, Tally>>,
    subnets: Mutex<LruCache<IpNet, Tally>>,
}

impl RiskMemory {
    pub fn new(config: &Config) -> Self {
        let (v4, v6) = config
            .limits
            .subnet
            .map_or((24, 64), |s| (s.ipv4_prefix, s.ipv6_prefix));
        Self::with_limits(
            config.suspicion.window.0,
            v4,
            v6,
            config.state.max_tracked_clients,
        )
    }

    pub fn with_limits(window: Duration, ipv4_prefix: u8, ipv6_prefix: u8, cap: usize) -> Self {
        let cap = NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN);
        Self {
            window,
            ipv4_prefix,
            ipv6_prefix,
            succeeded: Mutex::new(LruCache::new(cap)),
            clients: Mutex::new(LruCache::new(cap)),
            subnets: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Returns true if and only if a reloaded `config` reads this memory
    /// the same way (same window, same subnet prefixes), so that it can
    /// be kept.
    pub fn fits(&self, config: &Config) -> bool {
        let (v4, v6) = config
            .limits
            .subnet
            .map_or((24, 64), |s| (s.ipv4_prefix, s.ipv6_prefix));
        (self.window, self.ipv4_prefix, self.ipv6_prefix) == (config.suspicion.window.0, v4, v6)
    }

    /// Returns true if and only if `username` logged in successfully here
    /// (and has not been forgotten since).
    pub fn succeeded_before(&self, username: UsernameKey) -> bool {
        lock(&self.succeeded).get(&username).is_some()
    }

    /// The recent history of `client` and of its subnet, at `now`.
    pub fn history(&self, client: IpAddr, now: Instant) -> (History, History) {
        let subnet = subnet_of(client, self.ipv4_prefix, self.ipv6_prefix);
        let of = |tally: Option<Tally>, min| {
            tally
                .filter(|t| now.saturating_duration_since(t.since) < self.window)
                .map_or(History::Quiet, |t| {
                    History::of(t.successes, t.failures, min)
                })
        };
        (
            of(
                lock(&self.clients).peek(&client).copied(),
                CLIENT_MIN_FAILURES,
            ),
            of(
                lock(&self.subnets).peek(&subnet).copied(),
                SUBNET_MIN_FAILURES,
            ),
        )
    }

    /// Records the shop's answer to a login: `failed` is `Some(true)` for a
    /// failure, `Some(false)` for a success; unknown answers teach nothing.
    pub fn record(
        &self,
        client: IpAddr,
        username: UsernameKey,
        failed: Option<bool>,
        now: Instant,
    ) {
        let Some(failed) = failed else { return };
        if !failed {
            lock(&self.succeeded).put(username, ());
        }
        let subnet = subnet_of(client, self.ipv4_prefix, self.ipv6_prefix);
        count(&mut lock(&self.clients), client, failed, now, self.window);
        count(&mut lock(&self.subnets), subnet, failed, now, self.window);
    }
}

/// The histories of the client and the subnet from the counts every
/// replica shares, by the same thresholds as the local tables.
pub fn shared_history(seen: &Seen) -> (History, History) {
    let (client, subnet) = (seen.client, seen.subnet);
    (
        History::of(client.successes, client.failures, CLIENT_MIN_FAILURES),
        History::of(subnet.successes, subnet.failures, SUBNET_MIN_FAILURES),
    )
}

fn count<K: std::hash::Hash + Eq>(
    table: &mut LruCache<K, Tally>,
    key: K,
    failed: bool,
    now: Instant,
    window: Duration,
) {
    let fresh = Tally {
        since: now,
        successes: 0,
        failures: 0,
    };
    let tally = table.get_or_insert_mut(key, || fresh);
    if now.saturating_duration_since(tally.since) >= window {
        *tally = fresh;
    }
    match failed {
        true => tally.failures = tally.failures.saturating_add(1),
        false => tally.successes = tally.successes.saturating_add(1),
    }
}

/// A poisoned lock only means another request panicked mid-update of a
/// counter; the counts are still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);

    #[test]
    fn successes_are_remembered_per_username_and_bounded() {
        let memory = RiskMemory::with_limits(WINDOW, 24, 64, 2);
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        memory.record(ip, UsernameKey(1), Some(false), now);
        memory.record(ip, UsernameKey(2), Some(true), now);
        memory.record(ip, UsernameKey(3), None, now);
        assert!(memory.succeeded_before(UsernameKey(1)));
        assert!(!memory.succeeded_before(UsernameKey(2)));
        assert!(!memory.succeeded_before(UsernameKey(3)));
        memory.record(ip, UsernameKey(4), Some(false), now);
        memory.record(ip, UsernameKey(5), Some(false), now);
        assert!(!memory.succeeded_before(UsernameKey(1)), "over the cap");
        assert!(memory.succeeded_before(UsernameKey(5)));
    }

    #[test]
    fn shared_counts_use_the_same_thresholds() {
        use crate::state::Counts;
        let failing = |failures| Counts {
            successes: 1,
            failures,
        };
        let seen = Seen {
            client: failing(CLIENT_MIN_FAILURES),
            subnet: failing(SUBNET_MIN_FAILURES - 1),
            username_succeeded: false,
        };
        assert_eq!(shared_history(&seen), (History::Failing, History::Quiet));
        let seen = Seen {
            subnet: failing(SUBNET_MIN_FAILURES),
            ..seen
        };
        assert_eq!(shared_history(&seen).1, History::Failing);
    }

    #[test]
    fn failing_clients_and_subnets_within_the_window() {
        let memory = RiskMemory::with_limits(WINDOW, 24, 64, 100);
        let now = Instant::now();
        let ip = |last: u8| IpAddr::from([198, 51, 100, last]);
        for _ in 0..CLIENT_MIN_FAILURES {
            memory.record(ip(1), UsernameKey(9), Some(true), now);
        }
        assert_eq!(
            memory.history(ip(1), now),
            (History::Failing, History::Quiet)
        );
        assert_eq!(memory.history(ip(2), now), (History::Quiet, History::Quiet));
        for last in 0..SUBNET_MIN_FAILURES as u8 {
            memory.record(ip(10 + last), UsernameKey(9), Some(true), now);
        }
        assert_eq!(memory.history(ip(2), now).1, History::Failing);
        let later = now + WINDOW;
        assert_eq!(
            memory.history(ip(1), later),
            (History::Quiet, History::Quiet)
        );
        memory.record(ip(1), UsernameKey(9), Some(true), later);
        assert_eq!(
            memory.history(ip(1), later).0,
            History::Quiet,
            "a new window"
        );
    }

    #[test]
    fn an_address_that_logs_people_in_is_succeeding_until_it_fails_as_often() {
        let memory = RiskMemory::with_limits(WINDOW, 24, 64, 100);
        let now = Instant::now();
        let office = IpAddr::from([198, 51, 100, 7]);
        memory.record(office, UsernameKey(1), Some(false), now);
        memory.record(office, UsernameKey(2), Some(false), now);
        memory.record(office, UsernameKey(3), Some(true), now);
        assert_eq!(memory.history(office, now).0, History::Succeeding);
        // Its subnet logged people in too; a neighbour is not the address.
        let neighbour = IpAddr::from([198, 51, 100, 8]);
        assert_eq!(
            memory.history(neighbour, now),
            (History::Quiet, History::Succeeding)
        );
        memory.record(office, UsernameKey(4), Some(true), now);
        assert_eq!(memory.history(office, now).0, History::Quiet);
        // Unknown outcomes count for neither.
        memory.record(office, UsernameKey(5), None, now);
        assert_eq!(memory.history(office, now).0, History::Quiet);
    }
}
