//! The in-process backend: governor limiters and the reputation table.
//! It answers alone with `backend = "local"`, and stands in for Redis while
//! Redis fails (`on_backend_error = "local"`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::config::Config;
use crate::rate_limit::{AttemptKeys, Limiters, Throttled};
use crate::reputation::{Ban, BanReason, Observation, Reputation};

use super::origin::{Held, Note};

#[derive(Debug)]
pub struct Local {
    /// Swapped whole by a reload; see [`Limiters::reconfigure`] for what
    /// carries over.
    limiters: ArcSwap<Limiters>,
    max_keys: usize,
    // A std Mutex: every critical section is a few field updates and never
    // awaits, so an async lock would only add cost.
    reputation: Mutex<Reputation>,
    /// What operators said about their bans, by target; apart from the
    /// table so that the ban in it stays a small `Copy` value.
    notes: Mutex<HashMap<IpNet, Note>>,
    /// A ban was made or lifted since the last [`Local::take_changed`].
    changed: AtomicBool,
}

// === impl Local ===

impl Local {
    pub fn new(config: &Config) -> Self {
        let max = config.state.max_tracked_clients;
        Self {
            limiters: ArcSwap::from_pointee(Limiters::new(&config.limits, max)),
            max_keys: max,
            reputation: Mutex::new(Reputation::new(&config.suspicion, max)),
            notes: Mutex::default(),
            changed: AtomicBool::new(false),
        }
    }

    /// Applies a reloaded `[limits]` and `[suspicion]`.
    pub fn reconfigure(&self, config: &Config) {
        let limiters = self
            .limiters
            .load()
            .reconfigure(&config.limits, self.max_keys);
        self.limiters.store(Arc::new(limiters));
        self.reputation().set_rules(&config.suspicion);
    }

    pub fn ban_of(&self, ip: IpAddr) -> Option<Ban> {
        self.reputation().ban_of(ip, Instant::now())
    }

    pub fn admit_request(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.limiters.load().admit_request(ip)
    }

    pub fn admit(&self, keys: &AttemptKeys) -> Result<(), Throttled> {
        self.limiters.load().admit(keys)
    }

    pub fn refund(&self, keys: &AttemptKeys, username_only: bool) {
        let limiters = self.limiters.load();
        match username_only {
            true => limiters.refund_username(keys),
            false => limiters.refund(keys),
        }
    }

    /// Records an attempt; returns the bans it led to, each with what it
    /// covers: the client's, and its network's if that escalated.
    pub fn observe(&self, ip: IpAddr, observation: Observation) -> Vec<(IpNet, Ban)> {
        let now = Instant::now();
        let mut reputation = self.reputation();
        let Some(ban) = reputation.observe(ip, observation, now) else {
            return Vec::new();
        };
        let mut bans = vec![(reputation.rules().suspect(ip), ban)];
        bans.extend(reputation.escalate(ip, ban, now));
        self.changed.store(true, Ordering::Relaxed);
        bans
    }

    /// Every ban in force, a manual one with its operator's note.
    pub fn bans(&self) -> Vec<Held> {
        let bans = self.reputation().bans(Instant::now());
        let notes = self.notes();
        bans.into_iter()
            .map(|(target, ban)| {
                let note = match ban.reason {
                    BanReason::Manual => notes.get(&target).cloned(),
                    _ => None,
                };
                (target, ban, note)
            })
            .collect()
    }

    pub fn ban(&self, target: IpNet, duration: Duration, note: &Note) {
        self.reputation().ban(target, duration, Instant::now());
        self.note(target, note.clone());
    }

    /// Bans read back from a snapshot.
    pub fn restore(&self, bans: Vec<Held>) {
        let now = Instant::now();
        for (target, ban, note) in bans {
            self.reputation().put(target, ban, now);
            self.note(target, note.unwrap_or_default());
        }
        self.changed.store(false, Ordering::Relaxed);
    }

    pub fn unban(&self, target: IpNet) -> bool {
        self.notes().remove(&target);
        let lifted = self.reputation().unban(target);
        self.changed.fetch_or(lifted, Ordering::Relaxed);
        lifted
    }

    /// Returns true if and only if a ban was made or lifted since the last
    /// call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// Keeps `note` for the manual ban on `target` (an empty one: none).
    fn note(&self, target: IpNet, note: Note) {
        let mut notes = self.notes();
        match note.is_empty() {
            true => notes.remove(&target),
            false => notes.insert(target, note),
        };
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Expires bans and forgets idle limiter keys; returns the bans in
    /// force and the clients tracked.
    pub fn maintain(&self) -> (usize, usize) {
        self.limiters.load().forget_idle();
        let now = Instant::now();
        let mut reputation = self.reputation();
        let active = reputation.expire(now);
        let mut notes = self.notes();
        if !notes.is_empty() {
            let manual: HashSet<IpNet> = reputation
                .bans(now)
                .into_iter()
                .filter(|(_, ban)| ban.reason == BanReason::Manual)
                .map(|(target, _)| target)
                .collect();
            notes.retain(|target, _| manual.contains(target));
        }
        (active, reputation.tracked_clients())
    }

    pub fn tracked_clients(&self) -> usize {
        self.reputation().tracked_clients()
    }

    fn reputation(&self) -> MutexGuard<'_, Reputation> {
        self.reputation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notes(&self) -> MutexGuard<'_, HashMap<IpNet, Note>> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }
}
