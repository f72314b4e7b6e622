//! What each fingerprint's logins did over a sliding window: attempts,
//! failures, successes, and how many addresses it came from.
//!
//! A fingerprint whose logins mostly fail across many addresses is a tool
//! behind a proxy network; the admin API lists the busiest ones. Memory is
//! fixed per fingerprint (counters and a 1024-bit address sketch, never a
//! list of addresses) and the table is an LRU map with a hard cap, so a
//! client that randomises its ClientHello to mint fingerprints only evicts
//! the least recently seen.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{FingerprintLists, HttpFingerprint, Ja4};
use crate::config::ToolFingerprint;

/// Distinct fingerprints tracked at once. Real traffic shows a few hundred
/// to a few thousand client stacks per window; past this, the least
/// recently seen go first. About 300 bytes each.
pub const MAX_FINGERPRINTS: usize = 16_384;

/// Bits in the address sketch: linear counting stays within a few percent
/// up to a few thousand addresses, and says "at least ~7000" past that.
const SKETCH_WORDS: usize = 16;
const SKETCH_BITS: u32 = 64 * SKETCH_WORDS as u32;

/// The fingerprint table. Cloning is shallow.
#[derive(Debug, Clone)]
pub struct Fingerprints {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug)]
struct Table {
    window: Duration,
    entries: lru::LruCache<Ja4, Entry>,
    /// Keyed per process, so that no client can aim its addresses at one
    /// sketch bit.
    hasher: RandomState,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    since: Instant,
    current: Bucket,
    previous: Bucket,
    /// The HTTP fingerprint of its latest login that had one.
    http: Option<HttpFingerprint>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    attempts: u32,
    failures: u32,
    successes: u32,
    addresses: [u64; SKETCH_WORDS],
}

/// One fingerprint over the window, for the admin API.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FingerprintStats {
    pub ja4: Ja4,
    pub attempts: u64,
    pub failures: u64,
    pub successes: u64,
    /// Failures among the attempts whose outcome is known; `None` when
    /// none is.
    pub failure_ratio: Option<f64>,
    /// Estimated distinct client addresses.
    pub addresses: u64,
    /// The HTTP fingerprint its latest login came with.
    pub http: Option<HttpFingerprint>,
}

/// A fingerprint's reputation, the risk signal: whether its logins over
/// the window are a tool's (`[risk] tool_fingerprint`). Allowlisted
/// fingerprints have none.
#[derive(Debug, Clone)]
pub struct FingerprintReputation {
    table: Fingerprints,
    rule: Option<ToolFingerprint>,
    lists: FingerprintLists,
}

impl FingerprintReputation {
    pub fn new(
        table: Fingerprints,
        rule: Option<ToolFingerprint>,
        lists: FingerprintLists,
    ) -> Self {
        Self { table, rule, lists }
    }

    /// Returns true if and only if `fingerprint`'s logins over the window
    /// mostly failed, from many addresses.
    pub fn is_tool(&self, fingerprint: Option<Ja4>, now: Instant) -> bool {
        let (Some(rule), Some(ja4)) = (&self.rule, fingerprint) else {
            return false;
        };
        if self.lists.allowed(fingerprint) {
            return false;
        }
        let Some(stats) = self.table.stats(ja4, now) else {
            return false;
        };
        let known = stats.failures + stats.successes;
        known >= u64::from(rule.min_attempts)
            && stats.addresses >= u64::from(rule.min_addresses)
            && stats.failure_ratio.is_some_and(|r| r >= rule.failure_ratio)
    }
}

// === impl Fingerprints ===

impl Fingerprints {
    /// A table over a sliding `window` (the `[suspicion]` window).
    pub fn new(window: Duration) -> Self {
        Self::with_capacity(window, MAX_FINGERPRINTS)
    }

    pub fn with_capacity(window: Duration, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Arc::new(Mutex::new(Table {
                window: window.max(Duration::from_secs(1)),
                entries: lru::LruCache::new(capacity),
                hasher: RandomState::new(),
            })),
        }
    }

    /// Counts one login attempt by `ja4` (over `http`) from `client`;
    /// `failed` as the shop answered (`None`: unknown, or never forwarded).
    pub fn record(
        &self,
        ja4: Ja4,
        http: Option<HttpFingerprint>,
        client: IpAddr,
        failed: Option<bool>,
        now: Instant,
    ) {
        let mut table = self.lock();
        let bit = (table.hasher.hash_one(client.to_canonical()) % u64::from(SKETCH_BITS)) as usize;
        let window = table.window;
        let entry = table.entries.get_or_insert_mut(ja4, || Entry {
            since: now,
            current: Bucket::default(),
            previous: Bucket::default(),
            http: None,
        });
        entry.advance(now, window);
        if http.is_some() {
            entry.http = http;
        }
        let b = &mut entry.current;
        b.attempts = b.attempts.saturating_add(1);
        match failed {
            Some(true) => b.failures = b.failures.saturating_add(1),
            Some(false) => b.successes = b.successes.saturating_add(1),
            None => {}
        }
        b.addresses[bit / 64] |= 1 << (bit % 64);
    }

    /// One fingerprint over the window; `None` if it is not tracked.
    pub fn stats(&self, ja4: Ja4, now: Instant) -> Option<FingerprintStats> {
        let table = self.lock();
        let entry = table.entries.peek(&ja4)?;
        Some(entry.stats(ja4, now, table.window))
    }

    /// The `limit` fingerprints with the most attempts in the window,
    /// busiest first.
    pub fn top(&self, limit: usize, now: Instant) -> Vec<FingerprintStats> {
        let table = self.lock();
        let mut all: Vec<FingerprintStats> = table
            .entries
            .iter()
            .map(|(ja4, entry)| entry.stats(*ja4, now, table.window))
            .filter(|s| s.attempts > 0)
            .collect();
        all.sort_by(|a, b| b.attempts.cmp(&a.attempts).then(a.ja4.cmp(&b.ja4)));
        all.truncate(limit);
        all
    }

    /// How many fingerprints are tracked (the `credgate_fingerprints_seen`
    /// gauge).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets fingerprints not seen for two windows.
    pub fn expire(&self, now: Instant) {
        let mut table = self.lock();
        let memory = table.window * 2;
        // The LRU end holds the least recently seen: stop at the first one
        // still remembered.
        while let Some((_, entry)) = table.entries.peek_lru() {
            if now.saturating_duration_since(entry.since) < memory {
                break;
            }
            table.entries.pop_lru();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table holds counters only; one left half-updated by a panic
        // elsewhere is still a valid table.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// === impl Entry ===

impl Entry {
    /// Moves the buckets forward so that `current` contains `now`.
    fn advance(&mut self, now: Instant, window: Duration) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < window {
            return;
        }
        // Buckets stay aligned to whole windows from the first sighting, so
        // that the previous bucket's weight is its true overlap.
        (self.previous, self.since) = match elapsed < window * 2 {
            true => (self.current, self.since + window),
            false => (Bucket::default(), now),
        };
        self.current = Bucket::default();
    }

    /// The sliding-window estimate: all of the current bucket and the part
    /// of the previous one that still overlaps the window.
    fn stats(&self, ja4: Ja4, now: Instant, window: Duration) -> FingerprintStats {
        let mut entry = *self;
        entry.advance(now, window);
        let into = now.saturating_duration_since(entry.since);
        let weight = (1.0 - into.as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0);
        let mix = |c: u32, p: u32| (f64::from(c) + f64::from(p) * weight).round() as u64;
        let (c, p) = (&entry.current, &entry.previous);
        let failures = mix(c.failures, p.failures);
        let successes = mix(c.successes, p.successes);
        let known = failures + successes;
        let mut sketch = c.addresses;
        for (word, previous) in sketch.iter_mut().zip(p.addresses) {
            *word |= previous;
        }
        FingerprintStats {
            ja4,
            attempts: mix(c.attempts, p.attempts),
            failures,
            successes,
            failure_ratio: (known > 0).then(|| failures as f64 / known as f64),
            addresses: distinct(&sketch).round() as u64,
            http: self.http,
        }
    }
}

/// Linear counting: the number of distinct items whose hashes set `bits`.
fn distinct(bits: &[u64; SKETCH_WORDS]) -> f64 {
    let m = f64::from(SKETCH_BITS);
    match bits.iter().map(|w| w.count_zeros()).sum::<u32>() {
        0 => m * m.ln(), // saturated: at least this many
        zeros => m * (m / f64::from(zeros)).ln(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ja4(n: u8) -> Ja4 {
        let s = format!("t13d1516h2_8daaf6152771_e5627efa2a{n:02x}");
        Ja4::parse(&s).unwrap()
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn a_tool_rotating_addresses_shows_many_addresses_and_failures() {
        let table = Fingerprints::new(Duration::from_secs(600));
        let now = Instant::now();
        for n in 0..200 {
            table.record(ja4(1), None, ip(n), Some(true), now);
        }
        for _ in 0..5 {
            table.record(ja4(2), None, ip(7), Some(false), now);
        }
        let top = table.top(10, now);
        assert_eq!(top.len(), 2);
        let tool = top[0];
        assert_eq!((tool.ja4, tool.attempts, tool.failures), (ja4(1), 200, 200));
        assert_eq!(tool.failure_ratio, Some(1.0));
        assert!((180..=220).contains(&tool.addresses), "{}", tool.addresses);
        let customer = top[1];
        assert_eq!((customer.attempts, customer.addresses), (5, 1));
        assert_eq!(customer.failure_ratio, Some(0.0));
    }

    #[test]
    fn a_fingerprint_is_a_tool_past_every_threshold_and_never_when_allowed() {
        let table = Fingerprints::new(Duration::from_secs(600));
        let rule = ToolFingerprint {
            min_attempts: 20,
            min_addresses: 10,
            failure_ratio: 0.8,
        };
        let reputation = FingerprintReputation::new(table.clone(), Some(rule), Default::default());
        let now = Instant::now();
        let is_tool = |n| reputation.is_tool(Some(ja4(n)), now);
        // (attempts, addresses, failures in every ten) → a tool?
        let cases = [
            (1, 40, 40, 10, true),
            (2, 19, 19, 10, false), // too few attempts
            (3, 40, 5, 10, false),  // from too few addresses
            (4, 40, 40, 7, false),  // mostly failing, not enough
            (5, 40, 40, 8, true),
        ];
        for (n, attempts, addresses, failing, want) in cases {
            for i in 0..attempts {
                let failed = i % 10 < failing;
                table.record(ja4(n), None, ip(i % addresses), Some(failed), now);
            }
            assert_eq!(is_tool(n), want, "case {n}");
        }
        assert!(!is_tool(9), "never seen");
        assert!(!reputation.is_tool(None, now));
        let allowed = FingerprintLists::new(&[ja4(1).to_string()], &[]);
        let reputation = FingerprintReputation::new(table.clone(), Some(rule), allowed);
        assert!(!reputation.is_tool(Some(ja4(1)), now), "allowlisted");
        let off = FingerprintReputation::new(table, None, Default::default());
        assert!(!off.is_tool(Some(ja4(1)), now), "the signal is off");
    }

    #[test]
    fn unknown_outcomes_count_as_attempts_but_not_in_the_ratio() {
        let table = Fingerprints::new(Duration::from_secs(600));
        let now = Instant::now();
        table.record(ja4(1), None, ip(1), None, now);
        let stats = table.top(1, now)[0];
        assert_eq!((stats.attempts, stats.failure_ratio), (1, None));
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_least_recent() {
        let table = Fingerprints::with_capacity(Duration::from_secs(600), 3);
        let now = Instant::now();
        for n in 0..10 {
            table.record(ja4(n), None, ip(1), Some(true), now);
        }
        assert_eq!(table.len(), 3);
        let kept: Vec<Ja4> = table.top(10, now).iter().map(|s| s.ja4).collect();
        assert_eq!(kept, vec![ja4(7), ja4(8), ja4(9)]);
    }

    #[test]
    fn the_window_slides_and_old_fingerprints_expire() {
        let window = Duration::from_secs(600);
        let table = Fingerprints::new(window);
        let start = Instant::now();
        for n in 0..10 {
            table.record(ja4(1), None, ip(n), Some(true), start);
        }
        let half_later = start + window + window / 2;
        assert_eq!(table.top(1, half_later)[0].attempts, 5);
        table.expire(start + window * 2);
        assert!(table.is_empty());
    }
}
