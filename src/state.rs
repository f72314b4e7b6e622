//! The state behind limits, suspicion and bans, behind one narrow interface.
//!
//! The pipeline asks four questions per request: may this client come in at
//! all ([`State::screen`]), may this login attempt proceed
//! ([`State::admit`]), what did the attempt show ([`State::observe`]), and,
//! for the admin API, which bans are in force. Today the answers live in
//! this process; a shared backend (Redis) answers the same questions, which
//! is why the methods are `async` although the local answers are immediate.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use crate::config::{BanScope, Config};
use crate::metrics::Metrics;
use crate::rate_limit::{AttemptKeys, Limiters, Throttled};
use crate::reputation::{Ban, BanReason, Observation, Reputation};

/// Why a client is refused before its request is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the client is on the deny list")]
    Denied,
    #[error("the client is banned ({})", .0.reason.as_str())]
    Banned(Ban),
    #[error(transparent)]
    Throttled(#[from] Throttled),
}

/// A ban as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BanEntry {
    pub target: IpNet,
    pub reason: &'static str,
    /// Unix seconds.
    pub expires_at: u64,
    pub expires_in_seconds: u64,
}

/// A cheap handle to the state.
#[derive(Clone, Debug)]
pub struct State {
    inner: Arc<Local>,
}

/// The in-process backend.
#[derive(Debug)]
struct Local {
    limiters: Limiters,
    // A std Mutex: every critical section is a few field updates and never
    // awaits, so an async lock would only add cost.
    reputation: Mutex<Reputation>,
    suspicion: bool,
    ban_scope: BanScope,
    allowlist: Vec<IpNet>,
    denylist: Vec<IpNet>,
    /// Keys the username hash, so that the key of the username limit and the
    /// suspicion sketch is not the name.
    usernames: RandomState,
    metrics: Metrics,
}

// === impl State ===

impl State {
    pub fn new(config: &Config, metrics: Metrics) -> Self {
        let max = config.state.max_tracked_clients;
        let s = &config.suspicion;
        Self {
            inner: Arc::new(Local {
                limiters: Limiters::new(&config.limits, max),
                reputation: Mutex::new(Reputation::new(s, max)),
                suspicion: s.enabled,
                ban_scope: s.ban_scope,
                allowlist: s.allowlist.clone(),
                denylist: s.denylist.clone(),
                usernames: RandomState::new(),
                metrics,
            }),
        }
    }

    /// The keyed hash of a normalised username.
    pub fn username_key(&self, normalized: &str) -> u64 {
        self.inner.usernames.hash_one(normalized)
    }

    /// Deny list, bans (on login routes, or everywhere with `ban_scope =
    /// "all"`), and the all-traffic limit. Allowlisted clients always pass.
    pub async fn screen(&self, ip: IpAddr, login: bool) -> Result<(), Refusal> {
        let local = &self.inner;
        if local.denylist.iter().any(|net| net.contains(&ip)) {
            return Err(Refusal::Denied);
        }
        if self.allowed(ip) {
            return Ok(());
        }
        if login || local.ban_scope == BanScope::All {
            if let Some(ban) = self.reputation().ban_of(ip, Instant::now()) {
                return Err(Refusal::Banned(ban));
            }
        }
        local
            .limiters
            .admit_request(ip)
            .map_err(|t| Refusal::Throttled(self.throttled(t)))
    }

    /// The login limits for one attempt.
    pub async fn admit(&self, keys: &AttemptKeys) -> Result<(), Throttled> {
        if self.allowed(keys.ip) {
            return Ok(());
        }
        self.inner
            .limiters
            .admit(keys)
            .map_err(|t| self.throttled(t))
    }

    /// Records what an attempt showed; bans the client if it crossed a line.
    pub async fn observe(&self, ip: IpAddr, observation: Observation) {
        if !self.inner.suspicion || self.allowed(ip) {
            return;
        }
        let ban = self.reputation().observe(ip, observation, Instant::now());
        if let Some(ban) = ban {
            self.inner.metrics.record_ban(ban.reason);
            let seconds = ban
                .until
                .saturating_duration_since(Instant::now())
                .as_secs();
            tracing::info!(client = %ip, reason = ban.reason.as_str(), seconds, "client banned");
        }
    }

    pub async fn bans(&self) -> Vec<BanEntry> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut bans: Vec<BanEntry> = self
            .reputation()
            .bans(now)
            .into_iter()
            .map(|(target, ban)| {
                let left = ban.until.saturating_duration_since(now);
                BanEntry {
                    target,
                    reason: ban.reason.as_str(),
                    expires_at: crate::leaked::store::unix_seconds(wall + left),
                    expires_in_seconds: left.as_secs(),
                }
            })
            .collect();
        bans.sort_by_key(|b| b.target);
        bans
    }

    /// An operator's ban of an address or a network.
    pub async fn ban(&self, target: IpNet, duration: Duration) {
        self.reputation().ban(target, duration, Instant::now());
        self.inner.metrics.record_ban(BanReason::Manual);
        tracing::info!(%target, seconds = duration.as_secs(), "banned by an operator");
    }

    /// Lifts a ban; returns true if there was one on exactly `target`.
    pub async fn unban(&self, target: IpNet) -> bool {
        let lifted = self.reputation().unban(target);
        if lifted {
            tracing::info!(%target, "unbanned by an operator");
        }
        lifted
    }

    /// Every `every`: expires bans, forgets idle limiter keys and updates the
    /// gauges, until `shutdown`.
    pub async fn maintain(self, every: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            self.inner.limiters.forget_idle();
            let (active, clients) = {
                let mut reputation = self.reputation();
                (
                    reputation.expire(Instant::now()),
                    reputation.tracked_clients(),
                )
            };
            self.inner.metrics.record_state(active, clients);
        }
    }

    /// Tracked clients in the suspicion table.
    pub fn tracked_clients(&self) -> usize {
        self.reputation().tracked_clients()
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.inner.allowlist.iter().any(|net| net.contains(&ip))
    }

    fn throttled(&self, throttled: Throttled) -> Throttled {
        self.inner.metrics.record_rate_limited(throttled.limit);
        throttled
    }

    fn reputation(&self) -> MutexGuard<'_, Reputation> {
        self.inner
            .reputation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}
