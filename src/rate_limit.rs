//! Rate limits on login attempts, per client IP, per subnet, per username,
//! per client fingerprint and globally, and optionally on all traffic per
//! client IP.
//!
//! governor does the arithmetic (GCRA: one timestamp per key, no timers); the
//! keys live in [`BoundedStore`], an LRU map with a hard cap, because an
//! attacker controls how many distinct addresses and usernames we see, and
//! governor's own keyed store never forgets on its own.
//!
//! The per-client limits (ip, subnet, username, fingerprint) are charged by
//! failures: an
//! attempt takes a cell when it is admitted, so that a burst of attempts in
//! flight is bounded, and [`Limiters::refund`] gives the cell back when the
//! shop says the login succeeded. A carrier NAT full of customers who log in
//! never fills its quota; a stuffing source that fails 95% of the time does.
//! The global limit protects the shop's capacity and is charged by attempts.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use crate::client_ip::ClientIp;
use crate::config::{self, Limit};
use crate::fingerprint::Ja4;

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Ip,
    Subnet,
    Username,
    Global,
    /// `limits.all`: every request per client IP.
    All,
    /// Per client fingerprint (JA4): one tool behind many addresses.
    Fingerprint,
}

impl LimitKind {
    pub const ALL: [LimitKind; 6] = [
        Self::Ip,
        Self::Subnet,
        Self::Username,
        Self::Global,
        Self::All,
        Self::Fingerprint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Subnet => "subnet",
            Self::Username => "username",
            Self::Global => "global",
            Self::All => "all",
            Self::Fingerprint => "fingerprint",
        }
    }
}

/// An attempt over a limit: which one, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("over the {} limit; retry after {retry_after:?}", limit.as_str())]
pub struct Throttled {
    pub limit: LimitKind,
    pub retry_after: Duration,
}

/// What one login attempt is keyed on.
#[derive(Debug, Clone, Copy)]
pub struct AttemptKeys {
    pub client: ClientIp,
    pub username: UsernameKey,
    /// The connection's JA4 (or a trusted peer's header); `None` on the
    /// cleartext listener, where the fingerprint limit does not apply.
    pub fingerprint: Option<Ja4>,
    /// The request carries the account's device cookie. The username
    /// limit, there to stop many clients on one account, does not apply
    /// to the owner's own browser: a campaign that spends an account's
    /// attempts must not lock its owner out.
    pub known_device: bool,
}

impl AttemptKeys {
    /// Whether the username limit applies to this attempt.
    pub fn username_limited(&self) -> bool {
        !self.known_device
    }
}

/// A keyed hash of a normalised username: what limits and suspicion key on,
/// never the name itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsernameKey(pub u64);

impl UsernameKey {
    /// The username's bucket in a 64-bit sketch.
    pub fn bit(self) -> u32 {
        (self.0 % 64) as u32
    }

    /// The username's bucket in the 32-bit sketch of leaked pairs.
    pub fn leaked_bit(self) -> u32 {
        (self.0 % 32) as u32
    }
}

type Keyed<K, C> = RateLimiter<K, SharedStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed limiter whose cells can be given back.
struct KeyedLimit<K: Hash + Eq + Clone, C: Clock> {
    limiter: Keyed<K, C>,
    store: Arc<BoundedStore<K>>,
    /// The time one cell stands for.
    interval: Nanos,
}

/// Every configured limit. Generic over the clock so that tests can move
/// time by hand.
pub struct Limiters<C: Clock = DefaultClock> {
    ip: Option<KeyedLimit<IpAddr, C>>,
    subnet: Option<(KeyedLimit<IpNet, C>, u8, u8)>,
    username: Option<KeyedLimit<UsernameKey, C>>,
    fingerprint: Option<KeyedLimit<Ja4, C>>,
    /// Shared with the limiters a reload builds while its quota is the same.
    global: Option<(Arc<Direct<C>>, Limit)>,
    all: Option<KeyedLimit<IpAddr, C>>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for Limiters<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

// === impl Limiters ===

impl Limiters<DefaultClock> {
    pub fn new(limits: &config::Limits, max_keys: usize) -> Self {
        Self::with_clock(limits, max_keys, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limiters<C>
where
    C::Instant: Reference,
{
    pub fn with_clock(limits: &config::Limits, max_keys: usize, clock: C) -> Self {
        Self {
            ip: limits.ip.as_ref().map(|l| keyed(l, max_keys, &clock)),
            subnet: limits.subnet.as_ref().map(|s| {
                let limit = Limit {
                    rate: s.rate,
                    burst: s.burst,
                };
                (
                    keyed(&limit, max_keys, &clock),
                    s.ipv4_prefix,
                    s.ipv6_prefix,
                )
            }),
            username: limits.username.as_ref().map(|l| keyed(l, max_keys, &clock)),
            fingerprint: (limits.fingerprint.as_ref()).map(|l| keyed(l, max_keys, &clock)),
            global: limits.global.map(|g| (direct(&g, &clock), g)),
            all: limits.all.as_ref().map(|l| keyed(l, max_keys, &clock)),
            clock,
        }
    }

    /// The limiters of a reloaded `[limits]` that keep what these counted:
    /// a limit whose key is the same (ip, username, all; subnet at the same
    /// prefix lengths) keeps its store, so each client's history carries
    /// over under the new rate and burst. A subnet limit with new prefix
    /// lengths starts empty (its keys are other networks), and so does a
    /// global limit whose rate or burst changed.
    pub fn reconfigure(&self, limits: &config::Limits, max_keys: usize) -> Self {
        let clock = &self.clock;
        Self {
            ip: limits.ip.as_ref().map(|l| {
                keyed_on(
                    l,
                    max_keys,
                    clock,
                    self.ip.as_ref().map(|o| &o.store).cloned(),
                )
            }),
            subnet: limits.subnet.as_ref().map(|s| {
                let limit = Limit {
                    rate: s.rate,
                    burst: s.burst,
                };
                let same_keys = |(_, v4, v6): &&(KeyedLimit<IpNet, C>, u8, u8)| {
                    (*v4, *v6) == (s.ipv4_prefix, s.ipv6_prefix)
                };
                let old = self.subnet.as_ref().filter(same_keys).map(|o| &o.0.store);
                (
                    keyed_on(&limit, max_keys, clock, old.cloned()),
                    s.ipv4_prefix,
                    s.ipv6_prefix,
                )
            }),
            username: limits.username.as_ref().map(|l| {
                keyed_on(
                    l,
                    max_keys,
                    clock,
                    self.username.as_ref().map(|o| &o.store).cloned(),
                )
            }),
            fingerprint: limits.fingerprint.as_ref().map(|l| {
                keyed_on(
                    l,
                    max_keys,
                    clock,
                    self.fingerprint.as_ref().map(|o| &o.store).cloned(),
                )
            }),
            global: limits.global.map(|g| match &self.global {
                Some((same, old)) if (old.rate, old.burst) == (g.rate, g.burst) => {
                    (same.clone(), g)
                }
                _ => (direct(&g, clock), g),
            }),
            all: limits.all.as_ref().map(|l| {
                keyed_on(
                    l,
                    max_keys,
                    clock,
                    self.all.as_ref().map(|o| &o.store).cloned(),
                )
            }),
            clock: clock.clone(),
        }
    }

    /// Admits one login attempt, or says which limit it is over. Limits are
    /// checked narrowest first, and an attempt refused by one uses up none:
    /// the narrower cells it took are given back, so an attacker exhausting
    /// the global limit cannot drain other clients' own quotas.
    pub fn admit(&self, keys: &AttemptKeys) -> Result<(), Throttled> {
        let subnet = self
            .subnet
            .as_ref()
            .map(|(limit, v4, v6)| (limit, subnet_of(keys.client.0, *v4, *v6)));
        let mut charged = Charged::default();
        let result = self.charge(keys, subnet.as_ref(), &mut charged);
        if result.is_err() {
            self.give_back(keys, subnet.as_ref(), charged);
        }
        result
    }

    /// Gives back the per-client cells of an attempt that succeeded.
    pub fn refund(&self, keys: &AttemptKeys) {
        let subnet = self
            .subnet
            .as_ref()
            .map(|(limit, v4, v6)| (limit, subnet_of(keys.client.0, *v4, *v6)));
        let all = Charged {
            ip: true,
            subnet: true,
            username: keys.username_limited(),
            fingerprint: true,
        };
        self.give_back(keys, subnet.as_ref(), all);
    }

    /// Gives back the username cell of an attempt refused as a leaked
    /// pair: it never reached the shop, so it told nobody whether a
    /// password is right, and the account's owner, refused for that very
    /// pair, must still have attempts left for the new password. The
    /// client's own cells stay charged.
    pub fn refund_username(&self, keys: &AttemptKeys) {
        let username = Charged {
            username: keys.username_limited(),
            ..Charged::default()
        };
        self.give_back(keys, None, username);
    }

    /// Admits one request of any kind from `ip` (`limits.all`).
    pub fn admit_request(&self, ip: IpAddr) -> Result<(), Throttled> {
        match &self.all {
            Some(all) => self.check(all.limiter.check_key(&ip), LimitKind::All),
            None => Ok(()),
        }
    }

    fn charge(
        &self,
        keys: &AttemptKeys,
        subnet: Option<&(&KeyedLimit<IpNet, C>, IpNet)>,
        charged: &mut Charged,
    ) -> Result<(), Throttled> {
        if let Some(ip) = &self.ip {
            self.check(ip.limiter.check_key(&keys.client.0), LimitKind::Ip)?;
            charged.ip = true;
        }
        if let Some((limit, net)) = subnet {
            self.check(limit.limiter.check_key(net), LimitKind::Subnet)?;
            charged.subnet = true;
        }
        if let (Some(username), true) = (&self.username, keys.username_limited()) {
            let checked = username.limiter.check_key(&keys.username);
            self.check(checked, LimitKind::Username)?;
            charged.username = true;
        }
        if let (Some(limit), Some(ja4)) = (&self.fingerprint, &keys.fingerprint) {
            let checked = limit.limiter.check_key(ja4);
            self.check(checked, LimitKind::Fingerprint)?;
            charged.fingerprint = true;
        }
        if let Some((global, _)) = &self.global {
            self.check(global.check(), LimitKind::Global)?;
        }
        Ok(())
    }

    fn give_back(
        &self,
        keys: &AttemptKeys,
        subnet: Option<&(&KeyedLimit<IpNet, C>, IpNet)>,
        charged: Charged,
    ) {
        if let (Some(ip), true) = (&self.ip, charged.ip) {
            ip.refund(&keys.client.0);
        }
        if let (Some((limit, net)), true) = (subnet, charged.subnet) {
            limit.refund(net);
        }
        if let (Some(username), true) = (&self.username, charged.username) {
            username.refund(&keys.username);
        }
        if let (Some(limit), Some(ja4), true) =
            (&self.fingerprint, &keys.fingerprint, charged.fingerprint)
        {
            limit.refund(ja4);
        }
    }

    /// Forgets keys that have been idle long enough to have a full burst
    /// again. Call it now and then.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.ip {
            l.limiter.retain_recent();
        }
        if let Some((l, _, _)) = &self.subnet {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.username {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.fingerprint {
            l.limiter.retain_recent();
        }
        if let Some(l) = &self.all {
            l.limiter.retain_recent();
        }
    }

    /// Keys held in all the keyed limiters together.
    pub fn tracked_keys(&self) -> usize {
        let ip = self.ip.as_ref().map_or(0, |l| l.store.len());
        let subnet = self.subnet.as_ref().map_or(0, |(l, _, _)| l.store.len());
        let username = self.username.as_ref().map_or(0, |l| l.store.len());
        let all = self.all.as_ref().map_or(0, |l| l.store.len());
        let fingerprint = self.fingerprint.as_ref().map_or(0, |l| l.store.len());
        ip + subnet + username + all + fingerprint
    }

    fn check(
        &self,
        result: Result<(), governor::NotUntil<C::Instant>>,
        limit: LimitKind,
    ) -> Result<(), Throttled> {
        result.map_err(|not_until| Throttled {
            limit,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }
}

/// One budget shared by every caller (no key): e.g. the logins from
/// untrusted devices while a route is under attack.
pub struct Budget {
    limiter: Direct<DefaultClock>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").finish_non_exhaustive()
    }
}

impl Budget {
    pub fn new(limit: &Limit) -> Self {
        Self {
            limiter: RateLimiter::direct(quota(limit.rate, limit.burst)),
        }
    }

    /// Takes one cell, or says how long until one is free.
    pub fn admit(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Which per-client limits an attempt took a cell from.
#[derive(Debug, Clone, Copy, Default)]
struct Charged {
    ip: bool,
    subnet: bool,
    username: bool,
    fingerprint: bool,
}

fn keyed<K: Hash + Eq + Clone, C: Clock + Clone>(
    limit: &Limit,
    max_keys: usize,
    clock: &C,
) -> KeyedLimit<K, C> {
    keyed_on(limit, max_keys, clock, None)
}

/// A keyed limit on `store` (a reload's), or on a new one.
fn keyed_on<K: Hash + Eq + Clone, C: Clock + Clone>(
    limit: &Limit,
    max_keys: usize,
    clock: &C,
    store: Option<Arc<BoundedStore<K>>>,
) -> KeyedLimit<K, C> {
    let quota = quota(limit.rate, limit.burst);
    let store = store.unwrap_or_else(|| Arc::new(BoundedStore::new(max_keys)));
    KeyedLimit {
        limiter: RateLimiter::new(quota, SharedStore(store.clone()), clock.clone()),
        store,
        interval: Nanos::from(quota.replenish_interval()),
    }
}

// === impl KeyedLimit ===

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimit<K, C> {
    /// Gives one cell back to `key`: its theoretical arrival time moves one
    /// interval earlier. A key forgotten meanwhile already has a full burst.
    fn refund(&self, key: &K) {
        self.store.refund(key, self.interval);
    }
}

fn direct<C: Clock + Clone>(limit: &Limit, clock: &C) -> Arc<Direct<C>> {
    let quota = quota(limit.rate, limit.burst);
    Arc::new(RateLimiter::direct_with_clock(quota, clock.clone()))
}

fn quota(rate: config::Rate, burst: std::num::NonZeroU32) -> Quota {
    Quota::with_period(rate.interval())
        .unwrap_or_else(|| Quota::per_second(rate.count))
        .allow_burst(burst)
}

/// The network of `ip` at the configured prefix length.
pub fn subnet_of(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpNet {
    let prefix = match ip {
        IpAddr::V4(_) => ipv4_prefix,
        IpAddr::V6(_) => ipv6_prefix,
    };
    IpNet::new(ip, prefix).map_or(IpNet::from(ip), |net| net.trunc())
}

// === BoundedStore ===

const SHARDS: usize = 16;

/// A governor state store with a hard cap: an LRU map per shard. Under the
/// cap nothing is forgotten early; over it, the least recently seen key of
/// the shard goes first. Forgetting a key only forgives its history: the
/// next attempt starts with a full burst.
pub struct BoundedStore<K> {
    shards: Vec<Mutex<lru::LruCache<K, Nanos>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(max_keys: usize) -> Self {
        // Unbounded maps with the cap enforced on insert: memory follows the
        // clients actually seen instead of being reserved for the cap.
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(lru::LruCache::unbounded()))
                .collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<lru::LruCache<K, Nanos>> {
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        &self.shards[index]
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The store a limiter holds, shared with the [`KeyedLimit`] that refunds.
struct SharedStore<K>(Arc<BoundedStore<K>>);

impl<K: Hash + Eq + Clone> StateStore for SharedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> governor::state::keyed::ShrinkableKeyedStateStore<K> for SharedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// Moves `key`'s arrival time `interval` earlier; nothing if it is gone.
    fn refund(&self, key: &K, interval: Nanos) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = shard.peek_mut(key) {
            *tat = tat.saturating_sub(interval);
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The lock is held for a few arithmetic operations only; a std Mutex
        // per shard is cheaper than any lock-free scheme with eviction.
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let previous = shard.get(key).copied();
        let (outcome, next) = f(previous)?;
        if previous.is_none() && shard.len() >= self.per_shard {
            shard.pop_lru();
        }
        shard.put(key.clone(), next);
        Ok(outcome)
    }
}

/// Lets governor forget idle keys (`RateLimiter::retain_recent`): a key
/// whose state is older than `drop_below` is indistinguishable from a fresh
/// one, so dropping it changes no decision.
impl<K: Hash + Eq + Clone> governor::state::keyed::ShrinkableKeyedStateStore<K>
    for BoundedStore<K>
{
    fn retain_recent(&self, drop_below: Nanos) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let idle: Vec<K> = shard
                .iter()
                .filter(|(_, tat)| **tat < drop_below)
                .map(|(k, _)| k.clone())
                .collect();
            for key in idle {
                shard.pop(&key);
            }
        }
    }

    fn len(&self) -> usize {
        BoundedStore::len(self)
    }

    fn is_empty(&self) -> bool {
        BoundedStore::is_empty(self)
    }
}

#[cfg(test)]
mod tests;
