//! The state behind limits, suspicion and bans, behind one narrow interface.
//!
//! The pipeline asks four questions per request: may this client come in at
//! all ([`State::screen`]), may this login attempt proceed
//! ([`State::admit`]), what did the attempt show ([`State::observe`]), and,
//! for the admin API, which bans are in force. The answers come from a
//! backend: this process ([`local`]) or Redis, shared by every replica
//! ([`redis`]). The methods are `async` for the shared one.
//!
//! Allow and deny lists are configuration, the same on every replica, so
//! they are checked here and never stored. When Redis fails, the
//! `on_backend_error` policy answers instead, each failure is counted, and
//! the next answer from Redis ends the degraded state by itself.

mod local;
pub mod redis;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use crate::config::{self, BanScope, Config, OnBackendError};
use crate::logging;
use crate::metrics::Metrics;
use crate::rate_limit::{AttemptKeys, LimitKind, Throttled};
use crate::reputation::{Ban, BanReason, Observation};

use self::local::Local;
use self::redis::{BackendError, Redis, Screened};

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
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    backend: Backend,
    /// The answers with `backend = "local"`, and Redis' stand-in while it
    /// fails under `on_backend_error = "local"`.
    local: Local,
    on_error: OnBackendError,
    health: Health,
    suspicion: bool,
    ban_scope: BanScope,
    allowlist: Vec<IpNet>,
    denylist: Vec<IpNet>,
    /// Keys the username hash, so that the key of the username limit and the
    /// suspicion sketch is not the name. With Redis, a key shared by every
    /// replica replaces it once connected.
    usernames: RandomState,
    metrics: Metrics,
}

/// Where the answers come from.
#[derive(Debug)]
enum Backend {
    Local,
    /// Boxed once at start-up: the handle is large, and never moved again.
    Redis(Box<Redis>),
}

/// Whether the shared backend is failing, and when that was last logged.
#[derive(Debug, Default)]
struct Health {
    degraded: AtomicBool,
    last_warning: Mutex<Option<Instant>>,
}

/// Failures are logged at most this often; every one is counted.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What `on_backend_error = "deny"` answers a login: come back in a second.
const UNAVAILABLE: Throttled = Throttled {
    limit: LimitKind::Global,
    retry_after: Duration::from_secs(1),
};

// === impl State ===

impl State {
    pub fn new(config: &Config, metrics: Metrics) -> Self {
        let s = &config.suspicion;
        let backend = match (config.state.backend, &config.state.redis_url) {
            (config::Backend::Redis, Some(url)) => match Redis::new(config, url) {
                Ok(redis) => Backend::Redis(Box::new(redis)),
                Err(error) => {
                    // The URL was checked with the config; this is a bug.
                    tracing::error!(%error, "state.redis_url refused; using local state");
                    Backend::Local
                }
            },
            _ => Backend::Local,
        };
        Self {
            inner: Arc::new(Shared {
                backend,
                local: Local::new(config),
                on_error: config.state.on_backend_error,
                health: Health::default(),
                suspicion: s.enabled,
                ban_scope: s.ban_scope,
                allowlist: s.allowlist.clone(),
                denylist: s.denylist.clone(),
                usernames: RandomState::new(),
                metrics,
            }),
        }
    }

    /// Connects the shared backend, if there is one. A failure is not fatal:
    /// the replica serves under `on_backend_error` and [`State::maintain`]
    /// tries again.
    pub async fn connect(&self) {
        if let Backend::Redis(redis) = &self.inner.backend {
            match redis.connect().await {
                Ok(()) => {
                    tracing::info!("state: connected to redis");
                    self.recovered();
                }
                Err(error) => self.failed(&error),
            }
        }
    }

    /// Returns true if and only if the shared backend is failing right now.
    pub fn degraded(&self) -> bool {
        self.inner.health.degraded.load(Ordering::Relaxed)
    }

    /// What answers while the backend is degraded.
    pub fn on_backend_error(&self) -> OnBackendError {
        self.inner.on_error
    }

    /// The keyed hash of a normalised username.
    pub fn username_key(&self, normalized: &str) -> u64 {
        use sha1::{Digest, Sha1};
        if let Backend::Redis(redis) = &self.inner.backend {
            if let Some(key) = redis.username_key() {
                let digest = Sha1::new()
                    .chain_update(key)
                    .chain_update(normalized.as_bytes())
                    .finalize();
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                return u64::from_le_bytes(first);
            }
        }
        self.inner.usernames.hash_one(normalized)
    }

    /// Deny list, bans (on login routes, or everywhere with `ban_scope =
    /// "all"`), and the all-traffic limit. Allowlisted clients always pass.
    pub async fn screen(&self, ip: IpAddr, login: bool) -> Result<(), Refusal> {
        let shared = &self.inner;
        if shared.denylist.iter().any(|net| net.contains(&ip)) {
            return Err(Refusal::Denied);
        }
        if self.allowed(ip) {
            return Ok(());
        }
        let bans = login || shared.ban_scope == BanScope::All;
        let Backend::Redis(redis) = &shared.backend else {
            return self.screen_locally(ip, bans);
        };
        if !bans && !redis.limits_all() {
            return Ok(());
        }
        match redis.screen(ip, bans).await {
            Ok(screened) => {
                self.recovered();
                match screened {
                    Screened::Clear => Ok(()),
                    Screened::Banned(ban) => Err(Refusal::Banned(ban)),
                    Screened::Throttled(t) => Err(Refusal::Throttled(self.throttled(t))),
                }
            }
            Err(error) => {
                self.failed(&error);
                match shared.on_error {
                    OnBackendError::Local => self.screen_locally(ip, bans),
                    OnBackendError::Allow => Ok(()),
                    OnBackendError::Deny if login => Err(Refusal::Throttled(UNAVAILABLE)),
                    OnBackendError::Deny => Ok(()),
                }
            }
        }
    }

    /// The login limits for one attempt.
    pub async fn admit(&self, keys: &AttemptKeys) -> Result<(), Throttled> {
        if self.allowed(keys.ip) {
            return Ok(());
        }
        let admitted = match &self.inner.backend {
            Backend::Local => self.inner.local.admit(keys),
            Backend::Redis(redis) => match redis.admit(keys).await {
                Ok(admitted) => {
                    self.recovered();
                    admitted
                }
                Err(error) => {
                    self.failed(&error);
                    match self.inner.on_error {
                        OnBackendError::Local => self.inner.local.admit(keys),
                        OnBackendError::Allow => Ok(()),
                        OnBackendError::Deny => return Err(UNAVAILABLE),
                    }
                }
            },
        };
        admitted.map_err(|t| self.throttled(t))
    }

    /// Records what an attempt showed; bans the client if it crossed a line.
    pub async fn observe(&self, ip: IpAddr, observation: Observation) {
        if !self.inner.suspicion || self.allowed(ip) {
            return;
        }
        let ban = match &self.inner.backend {
            Backend::Local => self.inner.local.observe(ip, observation),
            Backend::Redis(redis) => match redis.observe(ip, observation).await {
                Ok(ban) => {
                    self.recovered();
                    ban
                }
                Err(error) => {
                    self.failed(&error);
                    match self.inner.on_error {
                        OnBackendError::Local => self.inner.local.observe(ip, observation),
                        OnBackendError::Allow | OnBackendError::Deny => None,
                    }
                }
            },
        };
        if let Some(ban) = ban {
            self.inner.metrics.record_ban(ban.reason);
            let seconds = ban
                .until
                .saturating_duration_since(Instant::now())
                .as_secs();
            tracing::info!(client = %ip, reason = ban.reason.as_str(), seconds, "client banned");
        }
    }

    /// Every ban in force (from this replica's memory while Redis fails).
    pub async fn bans(&self) -> Vec<BanEntry> {
        let bans = match &self.inner.backend {
            Backend::Local => self.inner.local.bans(),
            Backend::Redis(redis) => match redis.bans(true).await {
                Ok((bans, _)) => bans,
                Err(error) => {
                    self.failed(&error);
                    self.inner.local.bans()
                }
            },
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut entries: Vec<BanEntry> = bans
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
        entries.sort_by_key(|b| b.target);
        entries
    }

    /// An operator's ban of an address or a network. It is kept in this
    /// process too, so that the local fallback knows it.
    pub async fn ban(&self, target: IpNet, duration: Duration) {
        self.inner.local.ban(target, duration);
        if let Backend::Redis(redis) = &self.inner.backend {
            if let Err(error) = redis.ban(target, duration).await {
                self.failed(&error);
            }
        }
        self.inner.metrics.record_ban(BanReason::Manual);
        tracing::info!(%target, seconds = duration.as_secs(), "banned by an operator");
    }

    /// Lifts a ban; returns true if there was one on exactly `target`.
    pub async fn unban(&self, target: IpNet) -> bool {
        let mut lifted = self.inner.local.unban(target);
        if let Backend::Redis(redis) = &self.inner.backend {
            match redis.unban(target).await {
                Ok(shared) => lifted |= shared,
                Err(error) => self.failed(&error),
            }
        }
        if lifted {
            tracing::info!(%target, "unbanned by an operator");
        }
        lifted
    }

    /// Every `every`: expires bans, forgets idle limiter keys, updates the
    /// gauges and connects to Redis if it never could, until `shutdown`.
    pub async fn maintain(self, every: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let (mut active, clients) = self.inner.local.maintain();
            if let Backend::Redis(redis) = &self.inner.backend {
                if !redis.is_connected() {
                    self.connect().await;
                }
                match redis.bans(false).await {
                    Ok((_, shared)) => active = shared,
                    Err(error) => self.failed(&error),
                }
            }
            self.inner.metrics.record_state(active, clients);
        }
    }

    /// Tracked clients in this process' suspicion table.
    pub fn tracked_clients(&self) -> usize {
        self.inner.local.tracked_clients()
    }

    fn screen_locally(&self, ip: IpAddr, bans: bool) -> Result<(), Refusal> {
        let local = &self.inner.local;
        if bans {
            if let Some(ban) = local.ban_of(ip) {
                return Err(Refusal::Banned(ban));
            }
        }
        local
            .admit_request(ip)
            .map_err(|t| Refusal::Throttled(self.throttled(t)))
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.inner.allowlist.iter().any(|net| net.contains(&ip))
    }

    fn throttled(&self, throttled: Throttled) -> Throttled {
        self.inner.metrics.record_rate_limited(throttled.limit);
        throttled
    }

    /// Counts a failure of the shared backend; logs one now and then.
    fn failed(&self, error: &BackendError) {
        let health = &self.inner.health;
        self.inner.metrics.record_state_backend_error();
        health.degraded.store(true, Ordering::Relaxed);
        let mut last = health
            .last_warning
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.map_or(true, |at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            let policy = self.inner.on_error.as_str();
            tracing::warn!(error = %logging::chain(error), on_backend_error = policy, "state backend failing");
        }
    }

    fn recovered(&self) {
        if self.inner.health.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("state backend answering again");
        }
    }
}
