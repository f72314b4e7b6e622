//! Per-client suspicion and bans.
//!
//! A client is suspicious when, within the sliding `window`, it tries leaked
//! pairs, or fails most of its attempts, or sprays many usernames while
//! mostly failing. Many usernames that mostly succeed is an office or carrier
//! NAT full of real customers, and is never a reason to ban.
//!
//! Memory per client is fixed and small: two window buckets of counters and a
//! 64-bit sketch of the usernames tried (linear counting), never a list of
//! names. Clients live in an LRU map with a hard cap; under the cap nothing
//! is forgotten early, over it the least recently seen go first.
//!
//! An IPv6 client is its network of `ipv6_prefix` (its /64 by default):
//! rotating addresses inside one allocation neither resets its suspicion nor
//! escapes its ban. Bans of several addresses of one IPv4 network escalate
//! to a ban of the network ([`subnets`]), unless its customers log in.
//!
//! Time is a parameter of every call (`now`), so that the rules are tested
//! without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::config;
use crate::rate_limit::{subnet_of, UsernameKey};

use self::subnets::Subnets;

mod subnets;

/// Why a client was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    LeakedPairs,
    Failures,
    UsernameSpray,
    /// By an operator, through the admin API.
    Manual,
    /// A network, after bans of several of its addresses.
    SubnetEscalation,
}

impl BanReason {
    pub const ALL: [BanReason; 5] = [
        Self::LeakedPairs,
        Self::Failures,
        Self::UsernameSpray,
        Self::Manual,
        Self::SubnetEscalation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeakedPairs => "leaked_pairs",
            Self::Failures => "failures",
            Self::UsernameSpray => "username_spray",
            Self::Manual => "manual",
            Self::SubnetEscalation => "subnet_escalation",
        }
    }

    /// The reason named `text` ([`BanReason::as_str`]), if it is one.
    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A ban in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub until: Instant,
    pub reason: BanReason,
}

/// What one login attempt showed about its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub username: UsernameKey,
    pub leaked_pair: bool,
    /// `Some(true)`: the shop said the login failed; `Some(false)`: it
    /// succeeded; `None`: unknown (or the attempt was blocked).
    pub failed: Option<bool>,
}

/// The rules, from `[suspicion]`.
#[derive(Debug, Clone)]
pub struct Rules {
    window: Duration,
    leaked_pair_hits: u32,
    min_attempts: u32,
    failure_ratio: f64,
    distinct_usernames: u32,
    ladder: Vec<Duration>,
    memory: Duration,
    ipv6_prefix: u8,
}

/// Counters for one window-long bucket. Public so that a shared backend
/// (Redis) can keep them and still be judged by [`Rules::verdict`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub attempts: u32,
    pub failures: u32,
    /// The usernames of the leaked pairs tried, in a 32-bit linear-counting
    /// sketch: it counts distinct accounts, so a customer retrying their own
    /// refused pair is one hit however often they retry.
    pub leaked_usernames: u32,
    /// One bit per username hash bucket: a linear-counting sketch.
    pub usernames: u64,
}

/// Everything remembered about one client: about 80 bytes.
#[derive(Debug, Clone, Copy)]
struct Client {
    /// Start of the current bucket; the previous one covers the window
    /// before it.
    since: Instant,
    current: Bucket,
    previous: Bucket,
    /// Bans so far on the ladder, and when the last one ends.
    bans: u8,
    banned_until: Option<Instant>,
}

/// The client table and the bans.
#[derive(Debug)]
pub struct Reputation {
    rules: Rules,
    /// Keyed by [`Rules::suspect`].
    clients: lru::LruCache<IpNet, Client>,
    max_clients: usize,
    /// Bans of clients (an address, or an IPv6 client's network), automatic
    /// or manual, and the networks they escalated to: each found by one
    /// lookup.
    bans: HashMap<IpNet, Ban>,
    /// Manual bans of other networks; few, so a list.
    net_bans: Vec<(IpNet, Ban)>,
    max_bans: usize,
    /// `None`: `subnet_ban = "off"`.
    subnets: Option<Subnets>,
}

// === impl Rules ===

impl Rules {
    pub fn new(config: &config::Suspicion) -> Self {
        Self {
            window: config.window.0,
            leaked_pair_hits: config.leaked_pair_hits,
            min_attempts: config.min_attempts,
            failure_ratio: config.failure_ratio,
            distinct_usernames: config.distinct_usernames,
            ladder: config.ban.iter().map(|d| d.0).collect(),
            memory: config.ban_memory.0,
            ipv6_prefix: config.ipv6_prefix,
        }
    }

    /// What suspicion and bans key `ip` by: an IPv4 address itself, an IPv6
    /// address its network of `ipv6_prefix`.
    pub fn suspect(&self, ip: IpAddr) -> IpNet {
        subnet_of(ip, 32, self.ipv6_prefix)
    }

    /// Returns true if and only if `target` is what a client is keyed by:
    /// an address, or an IPv6 network of `ipv6_prefix`.
    pub fn is_suspect(&self, target: IpNet) -> bool {
        is_suspect(target, self.ipv6_prefix)
    }

    /// The window counts cover this long.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long a client's place on the ladder outlives its last ban.
    pub fn memory(&self) -> Duration {
        self.memory
    }

    /// The verdict on a client whose current bucket started `into` ago:
    /// the one decision both backends share.
    pub fn verdict(
        &self,
        into: Duration,
        current: &Bucket,
        previous: &Bucket,
    ) -> Option<BanReason> {
        self.judge(&Window::of(into, self.window, current, previous))
    }

    /// The next ban for a client with `bans_before` bans on the ladder, the
    /// last of which ended `since_last` ago (`None`: never banned): its
    /// duration and the client's new place on the ladder. A place is
    /// forgotten once `ban_memory` has passed without a ban.
    pub fn next_ban(&self, bans_before: u8, since_last: Option<Duration>) -> (Duration, u8) {
        let before = match since_last.is_some_and(|d| d > self.memory) {
            true => 0,
            false => bans_before,
        };
        (self.ban_duration(before), before.saturating_add(1))
    }

    /// The verdict on a client's window, if it is suspicious.
    fn judge(&self, window: &Window) -> Option<BanReason> {
        if self.leaked_pair_hits > 0 && window.leaked_pairs >= f64::from(self.leaked_pair_hits) {
            return Some(BanReason::LeakedPairs);
        }
        let judged = window.attempts >= f64::from(self.min_attempts.max(1));
        let ratio = match window.attempts > 0.0 {
            true => window.failures / window.attempts,
            false => 0.0,
        };
        if judged && ratio >= self.failure_ratio {
            return Some(BanReason::Failures);
        }
        // A spray is many usernames from one client, mostly failing.
        if window.usernames >= f64::from(self.distinct_usernames) && ratio >= SPRAY_FAILURE_RATIO {
            return Some(BanReason::UsernameSpray);
        }
        None
    }

    fn ban_duration(&self, bans_before: u8) -> Duration {
        let step = usize::from(bans_before).min(self.ladder.len() - 1);
        self.ladder[step]
    }
}

/// Returns true if and only if `target` is an address, or an IPv6 network
/// of `ipv6_prefix`: what a client is keyed by.
pub fn is_suspect(target: IpNet, ipv6_prefix: u8) -> bool {
    target.prefix_len() == target.max_prefix_len()
        || matches!(target, IpNet::V6(net) if net.prefix_len() == ipv6_prefix)
}

/// The share of failures above which many usernames are a spray rather than
/// a NAT of real customers.
const SPRAY_FAILURE_RATIO: f64 = 0.5;

/// A client's counts over the sliding window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    attempts: f64,
    failures: f64,
    leaked_pairs: f64,
    usernames: f64,
}

impl Window {
    /// The sliding-window estimate: all of the current bucket, and the part
    /// of the previous one that still overlaps the window.
    fn of(into: Duration, window: Duration, current: &Bucket, previous: &Bucket) -> Self {
        let weight = (1.0 - into.as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0);
        let mix = |current: u32, previous: u32| f64::from(current) + f64::from(previous) * weight;
        Self {
            attempts: mix(current.attempts, previous.attempts),
            failures: mix(current.failures, previous.failures),
            leaked_pairs: distinct(current.leaked_usernames | previous.leaked_usernames),
            usernames: distinct(current.usernames | previous.usernames),
        }
    }
}

// === impl Client ===

impl Client {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            current: Bucket::default(),
            previous: Bucket::default(),
            bans: 0,
            banned_until: None,
        }
    }

    /// Moves the buckets forward so that `current` contains `now`.
    fn advance(&mut self, now: Instant, window: Duration) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < window {
            return;
        }
        self.previous = match elapsed < window * 2 {
            true => self.current,
            false => Bucket::default(),
        };
        self.current = Bucket::default();
        self.since = now;
    }

    fn window(&self, now: Instant, window: Duration) -> Window {
        let into = now.saturating_duration_since(self.since);
        Window::of(into, window, &self.current, &self.previous)
    }
}

/// Linear counting: the number of distinct items whose hashes set the bits
/// of a 32- or 64-bit sketch.
fn distinct<B: Into<u64> + Copy>(bits: B) -> f64 {
    let width = f64::from(u32::try_from(std::mem::size_of::<B>() * 8).unwrap_or(64));
    let set = bits.into().count_ones();
    match width - f64::from(set) {
        zeros if zeros <= 0.0 => width * width.ln(), // saturated: at least this many
        zeros => width * (width / zeros).ln(),
    }
}

// === impl Reputation ===

impl Reputation {
    pub fn new(config: &config::Suspicion, max_clients: usize) -> Self {
        // The cap is enforced on insert, so that memory follows the clients
        // actually seen instead of being reserved up front.
        Self {
            rules: Rules::new(config),
            clients: lru::LruCache::unbounded(),
            max_clients: max_clients.max(1),
            bans: HashMap::new(),
            net_bans: Vec::new(),
            max_bans: max_clients,
            subnets: config.subnet_ban.map(|s| Subnets::new(s, max_clients)),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// New rules from a reloaded `[suspicion]`. Clients' windows and bans
    /// stay: a ban in force runs its course, and the next attempt is judged
    /// by the new thresholds.
    pub fn set_rules(&mut self, config: &config::Suspicion) {
        self.rules = Rules::new(config);
        self.subnets = match (self.subnets.take(), config.subnet_ban) {
            (Some(mut subnets), Some(rules)) => {
                subnets.set_rules(rules);
                Some(subnets)
            }
            (_, rules) => rules.map(|r| Subnets::new(r, self.max_clients)),
        };
    }

    /// The ban on `ip` in force at `now`, if any.
    pub fn ban_of(&self, ip: IpAddr, now: Instant) -> Option<Ban> {
        let active = |ban: &Ban| ban.until > now;
        let keys = [
            Some(IpNet::from(ip)),
            Some(self.rules.suspect(ip)),
            self.subnets.as_ref().and_then(|s| s.network(ip)),
        ];
        for key in keys.iter().flatten() {
            if let Some(ban) = self.bans.get(key).filter(|b| active(b)) {
                return Some(*ban);
            }
        }
        self.net_bans
            .iter()
            .find(|(net, ban)| net.contains(&ip) && active(ban))
            .map(|(_, ban)| *ban)
    }

    /// Records one attempt; returns the ban it triggered, if any.
    pub fn observe(&mut self, ip: IpAddr, observation: Observation, now: Instant) -> Option<Ban> {
        if let (Some(subnets), Some(false)) = (&mut self.subnets, observation.failed) {
            subnets.succeeded(ip, now);
        }
        let key = self.rules.suspect(ip);
        if !self.clients.contains(&key) && self.clients.len() >= self.max_clients {
            self.clients.pop_lru();
        }
        let rules = &self.rules;
        let client = self.clients.get_or_insert_mut(key, || Client::new(now));
        client.advance(now, rules.window);
        let bucket = &mut client.current;
        bucket.attempts += 1;
        bucket.failures += u32::from(observation.failed == Some(true));
        if observation.leaked_pair {
            bucket.leaked_usernames |= 1u32 << observation.username.leaked_bit();
        }
        bucket.usernames |= 1u64 << observation.username.bit();
        if client.banned_until.is_some_and(|until| until > now) {
            return None;
        }
        let reason = rules.judge(&client.window(now, rules.window))?;
        let since_last = client
            .banned_until
            .map(|until| now.saturating_duration_since(until));
        let (duration, level) = rules.next_ban(client.bans, since_last);
        let until = now + duration;
        client.bans = level;
        client.banned_until = Some(until);
        // A fresh start for the next window once the ban ends.
        client.current = Bucket::default();
        client.previous = Bucket::default();
        let ban = Ban { until, reason };
        self.insert_ban(key, ban, now);
        Some(ban)
    }

    /// Records `ban`, just imposed on `ip`; returns the ban of its network
    /// if that was the last straw ([`subnets`]). It ends with `ban`.
    pub fn escalate(&mut self, ip: IpAddr, ban: Ban, now: Instant) -> Option<(IpNet, Ban)> {
        let net = self.subnets.as_mut()?.banned(ip, now)?;
        if self.bans.get(&net).is_some_and(|b| b.until > now) {
            return None;
        }
        let ban = Ban {
            until: ban.until,
            reason: BanReason::SubnetEscalation,
        };
        self.insert_ban(net, ban, now);
        Some((net, ban))
    }

    /// An operator's ban of an address or a network.
    pub fn ban(&mut self, target: IpNet, duration: Duration, now: Instant) -> Ban {
        let ban = Ban {
            until: now + duration,
            reason: BanReason::Manual,
        };
        self.put(target, ban, now);
        ban
    }

    /// A ban as it is given, of any reason (one restored at start-up): a
    /// client's and an escalated network's where screening looks them up
    /// by key, an operator's network among the network bans.
    pub fn put(&mut self, target: IpNet, ban: Ban, now: Instant) {
        let escalated = |subnets: &Subnets| subnets.network(target.addr()) == Some(target.trunc());
        let keyed = self.rules.is_suspect(target)
            || (ban.reason == BanReason::SubnetEscalation
                && self.subnets.as_ref().is_some_and(escalated));
        match keyed {
            true => self.insert_ban(target.trunc(), ban, now),
            false => {
                self.net_bans.retain(|(net, _)| *net != target);
                self.net_bans.push((target.trunc(), ban));
            }
        }
    }

    /// Lifts the ban on exactly `target`; returns true if there was one.
    /// A network's record of banned addresses goes with it, so that the
    /// next ban of one of them does not ban the network again at once.
    pub fn unban(&mut self, target: IpNet) -> bool {
        let target = target.trunc();
        if let Some(client) = self.clients.peek_mut(&target) {
            client.banned_until = None;
        }
        if let Some(subnets) = &mut self.subnets {
            subnets.forget(target);
        }
        let before = self.net_bans.len();
        self.net_bans.retain(|(net, _)| *net != target);
        self.bans.remove(&target).is_some() || self.net_bans.len() != before
    }

    /// Every ban in force at `now`, networks included.
    pub fn bans(&self, now: Instant) -> Vec<(IpNet, Ban)> {
        let singles = self.bans.iter().map(|(target, ban)| (*target, *ban));
        singles
            .chain(self.net_bans.iter().copied())
            .filter(|(_, ban)| ban.until > now)
            .collect()
    }

    /// Drops expired bans; returns how many are still in force.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.bans.retain(|_, ban| ban.until > now);
        self.net_bans.retain(|(_, ban)| ban.until > now);
        self.bans.len() + self.net_bans.len()
    }

    pub fn tracked_clients(&self) -> usize {
        self.clients.len()
    }

    fn insert_ban(&mut self, target: IpNet, ban: Ban, now: Instant) {
        if self.bans.len() >= self.max_bans {
            self.expire(now);
        }
        // Still full of live bans: the one ending soonest makes room.
        if self.bans.len() >= self.max_bans {
            if let Some(soonest) = self
                .bans
                .iter()
                .min_by_key(|(_, b)| b.until)
                .map(|(target, _)| *target)
            {
                self.bans.remove(&soonest);
            }
        }
        self.bans.insert(target, ban);
    }
}

#[cfg(test)]
mod tests;
