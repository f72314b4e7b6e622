//! The state behind limits, suspicion and bans, behind one narrow interface.
//!
//! The pipeline asks four questions per request: may this client come in at
//! all ([`State::screen`]), may this login attempt proceed
//! ([`State::admit`]), what did the attempt show ([`State::observe`]), and,
//! for the admin API, which bans are in force. The answers come from a
//! backend: this process ([`local`]) or Redis, shared by every replica
//! ([`redis`]). The methods are `async` for the shared one.
//!
//! With Redis it also carries attack mode between replicas
//! ([`State::share_attacks`]): who detects an attack, and what operators
//! forced.
//!
//! Allow and deny lists are configuration, the same on every replica, so
//! they are checked here and never stored. When Redis fails, the
//! `on_backend_error` policy answers instead, each failure is counted, and
//! the next answer from Redis ends the degraded state by itself.
//!
//! Every ban has an origin and a reason ([`origin`]). With `backend =
//! "local"` and `ban_snapshot` set, the bans are kept on disk
//! ([`snapshot`]) at most [`maintain`](State::maintain)'s period after a
//! change and at shutdown, and read back at start.

mod health;
mod local;
pub mod origin;
pub mod redis;
mod snapshot;

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ipnet::IpNet;
use prometheus::IntCounter;

use crate::attack::{AttackMode, Mode, SharedMode};
use crate::client_ip::ClientIp;
use crate::config::{self, BanScope, Config, OnBackendError};
use crate::fingerprint::{FingerprintLists, Ja4};
use crate::rate_limit::{AttemptKeys, Throttled, UsernameKey};
use crate::reputation::{Ban, BanReason, Observation};

use self::health::Health;
use self::local::Local;
use self::origin::{Cause, Note, Origin};
use self::redis::{BackendError, Mismatch, Redis, Screened};

pub use self::redis::{Counts, Seen};
pub use self::snapshot::SnapshotError;

/// Why a client is refused before its request is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the client is on the deny list")]
    Denied,
    /// A login attempt whose fingerprint is on the deny list.
    #[error("the client's fingerprint is on the deny list")]
    DeniedFingerprint,
    #[error("the client is banned ({})", .0.reason.as_str())]
    Banned(Ban),
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// `on_backend_error = "deny"` while the shared backend fails: no limit
    /// was consulted, so none is counted.
    #[error("the shared state is unavailable")]
    Unavailable,
}

/// A ban as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BanEntry {
    pub target: IpNet,
    pub origin: Origin,
    /// An automatic ban's rule, or the operator's words (`manual` when
    /// they gave none).
    pub reason: std::borrow::Cow<'static, str>,
    /// The operator who made a manual ban, when they said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
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
    /// `state.ban_snapshot`, with `backend = "local"` only.
    snapshot: Option<PathBuf>,
    /// The last write of the snapshot failed: retried at each maintenance.
    snapshot_failing: AtomicBool,
    /// Swapped whole by a reload.
    screening: ArcSwap<Screening>,
    /// Keys the username hash, so that the key of the username limit and the
    /// suspicion sketch is not the name. With Redis, a key shared by every
    /// replica replaces it once connected.
    usernames: RandomState,
}

/// Who is screened how: the parts of `[suspicion]` a reload changes here.
#[derive(Debug)]
struct Screening {
    suspicion: bool,
    ban_scope: BanScope,
    allowlist: Vec<IpNet>,
    denylist: Vec<IpNet>,
    fingerprints: FingerprintLists,
}

impl Screening {
    fn new(s: &config::Suspicion) -> Self {
        Self {
            suspicion: s.enabled,
            ban_scope: s.ban_scope,
            allowlist: s.allowlist.clone(),
            denylist: s.denylist.clone(),
            fingerprints: FingerprintLists::new(&s.fingerprint_allowlist, &s.fingerprint_denylist),
        }
    }

    fn denies(&self, client: ClientIp) -> bool {
        self.denylist.iter().any(|net| net.contains(&client.0))
    }

    fn allows(&self, client: ClientIp) -> bool {
        self.allowlist.iter().any(|net| net.contains(&client.0))
    }

    /// The keys the login limits count for an attempt: none for an
    /// allowlisted client, and no fingerprint when the fingerprint is
    /// allowlisted (it is exempt from the fingerprint limit and its
    /// reputation).
    fn limiting(&self, keys: &AttemptKeys) -> Option<AttemptKeys> {
        if self.allows(keys.client) {
            return None;
        }
        let mut keys = *keys;
        if self.fingerprints.allowed(keys.fingerprint) {
            keys.fingerprint = None;
        }
        Some(keys)
    }
}

/// Where the answers come from.
#[derive(Debug)]
enum Backend {
    Local,
    /// Boxed once at start-up: the handle is large, and never moved again.
    Redis(Box<Redis>),
}

// === impl State ===

impl State {
    /// The state for `config`. `backend_errors` counts the shared backend's
    /// failures: the fallback answers them, so no caller ever sees one.
    pub fn new(config: &Config, backend_errors: IntCounter) -> Self {
        let backend = match config.state.backend {
            config::Backend::Redis | config::Backend::RedisCluster => match Redis::new(config) {
                Ok(redis) => Backend::Redis(Box::new(redis)),
                Err(error) => {
                    // The URLs were checked with the config; this is a bug.
                    tracing::error!(%error, "state redis URLs refused; using local state");
                    Backend::Local
                }
            },
            config::Backend::Local => Backend::Local,
        };
        Self {
            inner: Arc::new(Shared {
                backend,
                local: Local::new(config),
                on_error: config.state.on_backend_error,
                health: Health::new(backend_errors),
                snapshot: match config.state.backend {
                    config::Backend::Local => config.state.ban_snapshot.clone(),
                    config::Backend::Redis | config::Backend::RedisCluster => None,
                },
                snapshot_failing: AtomicBool::new(false),
                screening: ArcSwap::from_pointee(Screening::new(&config.suspicion)),
                usernames: RandomState::new(),
            }),
        }
    }

    /// Applies a reloaded `[limits]` and `[suspicion]`: allow and deny
    /// lists, ban scope and thresholds at once; the clients' windows and
    /// bans stay (`Local::reconfigure`). `[state]` itself needs a
    /// restart.
    pub fn reconfigure(&self, config: &Config) {
        self.inner.local.reconfigure(config);
        if let Backend::Redis(redis) = &self.inner.backend {
            redis.reconfigure(config);
        }
        let screening = Screening::new(&config.suspicion);
        self.inner.screening.store(Arc::new(screening));
    }

    /// Connects the shared backend, if there is one. A server that is down
    /// is not fatal: the replica serves under `on_backend_error` and
    /// [`State::maintain`] tries again. A server of the wrong kind (a
    /// cluster node for `backend = "redis"`, or the other way round) is: no
    /// retry would fix the configuration.
    pub async fn connect(&self) -> Result<(), Mismatch> {
        if let Backend::Redis(redis) = &self.inner.backend {
            match redis.connect().await {
                Ok(()) => {
                    tracing::info!("state: connected to redis");
                    self.inner.health.recovered();
                }
                Err(BackendError::Mismatch(mismatch)) => return Err(mismatch),
                Err(error) => self.inner.health.failed(&error, self.inner.on_error),
            }
        }
        Ok(())
    }

    /// Returns true if and only if the shared backend is failing right now.
    pub fn degraded(&self) -> bool {
        self.inner.health.degraded()
    }

    /// What answers while the backend is degraded.
    pub fn on_backend_error(&self) -> OnBackendError {
        self.inner.on_error
    }

    /// The keyed hash of a normalised username.
    pub fn username_key(&self, normalized: &str) -> UsernameKey {
        use sha1::{Digest, Sha1};
        if let Backend::Redis(redis) = &self.inner.backend {
            if let Some(key) = redis.username_key() {
                let digest = Sha1::new()
                    .chain_update(key)
                    .chain_update(normalized.as_bytes())
                    .finalize();
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                return UsernameKey(u64::from_le_bytes(first));
            }
        }
        UsernameKey(self.inner.usernames.hash_one(normalized))
    }

    /// Deny list, bans (on login routes, or everywhere with `ban_scope =
    /// "all"`), and the all-traffic limit. Allowlisted clients always pass.
    pub async fn screen(&self, client: ClientIp, login: bool) -> Result<(), Refusal> {
        let shared = &self.inner;
        // One load, its guard dropped before any await: a guard held across
        // one would keep one of the thread's few cheap arc-swap slots busy.
        let bans = {
            let screening = shared.screening.load();
            if screening.denies(client) {
                return Err(Refusal::Denied);
            }
            if screening.allows(client) {
                return Ok(());
            }
            login || screening.ban_scope == BanScope::All
        };
        let Backend::Redis(redis) = &shared.backend else {
            return self.screen_locally(client, bans);
        };
        if !bans && !redis.limits_all() {
            return Ok(());
        }
        let screened = async {
            Ok(match redis.screen(client.0, bans).await? {
                Screened::Clear => Ok(()),
                Screened::Banned(ban) => Err(Refusal::Banned(ban)),
                Screened::Throttled(t) => Err(Refusal::Throttled(t)),
            })
        };
        self.shared(screened, |policy| match policy {
            OnBackendError::Local => self.screen_locally(client, bans),
            OnBackendError::Allow => Ok(()),
            OnBackendError::Deny if login => Err(Refusal::Unavailable),
            OnBackendError::Deny => Ok(()),
        })
        .await
    }

    /// A login attempt's fingerprint: refused if it is on the deny list.
    pub fn screen_fingerprint(&self, fingerprint: Option<Ja4>) -> Result<(), Refusal> {
        match self.inner.screening.load().fingerprints.denied(fingerprint) {
            true => Err(Refusal::DeniedFingerprint),
            false => Ok(()),
        }
    }

    /// The login limits for one attempt.
    pub async fn admit(&self, keys: &AttemptKeys) -> Result<(), Refusal> {
        let Some(keys) = &self.inner.screening.load().limiting(keys) else {
            return Ok(());
        };
        let local = &self.inner.local;
        match &self.inner.backend {
            Backend::Local => local.admit(keys).map_err(Refusal::Throttled),
            Backend::Redis(redis) => {
                let shared = async { Ok(redis.admit(keys).await?.map_err(Refusal::Throttled)) };
                self.shared(shared, |policy| match policy {
                    OnBackendError::Local => local.admit(keys).map_err(Refusal::Throttled),
                    OnBackendError::Allow => Ok(()),
                    OnBackendError::Deny => Err(Refusal::Unavailable),
                })
                .await
            }
        }
    }

    /// Gives back what a login attempt took from the per-client limits: the
    /// shop said it succeeded.
    pub async fn refund(&self, keys: &AttemptKeys) {
        self.give_back(keys, false).await;
    }

    /// Gives back the username cell of an attempt refused as a leaked pair
    /// (see [`crate::rate_limit::Limiters::refund_username`]).
    pub async fn refund_username(&self, keys: &AttemptKeys) {
        self.give_back(keys, true).await;
    }

    async fn give_back(&self, keys: &AttemptKeys, username_only: bool) {
        let Some(keys) = &self.inner.screening.load().limiting(keys) else {
            return;
        };
        let local = &self.inner.local;
        match &self.inner.backend {
            Backend::Local => local.refund(keys, username_only),
            Backend::Redis(redis) => {
                let shared = async {
                    match username_only {
                        true => redis.refund_username(keys).await,
                        false => redis.refund(keys).await,
                    }
                };
                self.shared(shared, |policy| match policy {
                    OnBackendError::Local => local.refund(keys, username_only),
                    OnBackendError::Allow | OnBackendError::Deny => {}
                })
                .await
            }
        }
    }

    /// What every replica saw of a login's client, subnet and username, for
    /// risk; `None` on the local backend, or when Redis fails (risk then
    /// reads its own memory).
    pub async fn risk_seen(&self, client: ClientIp, username: UsernameKey) -> Option<Seen> {
        let Backend::Redis(redis) = &self.inner.backend else {
            return None;
        };
        let shared = async { redis.risk_seen(client.0, username).await.map(Some) };
        self.shared(shared, |_| None).await
    }

    /// Counts the shop's answer to a login for every replica's risk.
    pub async fn risk_record(&self, client: ClientIp, username: UsernameKey, failed: bool) {
        if let Backend::Redis(redis) = &self.inner.backend {
            let shared = redis.risk_record(client.0, username, failed);
            self.shared(shared, |_| ()).await;
        }
    }

    /// Records what an attempt showed. Returns the bans it led to: the
    /// client's (an IPv6 client's covers its network), and the network's
    /// it escalated to.
    pub async fn observe(&self, client: ClientIp, observation: Observation) -> Vec<Ban> {
        let screened = {
            let screening = self.inner.screening.load();
            screening.suspicion && !screening.allows(client)
        };
        if !screened {
            return Vec::new();
        }
        let local = &self.inner.local;
        let bans = match &self.inner.backend {
            Backend::Local => local.observe(client.0, observation),
            Backend::Redis(redis) => {
                self.shared(
                    redis.observe(client.0, observation),
                    |policy| match policy {
                        OnBackendError::Local => local.observe(client.0, observation),
                        OnBackendError::Allow | OnBackendError::Deny => Vec::new(),
                    },
                )
                .await
            }
        };
        for (target, ban) in &bans {
            let seconds = ban
                .until
                .saturating_duration_since(Instant::now())
                .as_secs();
            let reason = ban.reason.as_str();
            match ban.reason {
                BanReason::SubnetEscalation => tracing::info!(
                    subnet = %target,
                    origin = "automatic",
                    reason,
                    seconds,
                    "subnet banned"
                ),
                _ => tracing::info!(
                    client = %target,
                    origin = "automatic",
                    reason,
                    seconds,
                    "client banned"
                ),
            }
        }
        bans.into_iter().map(|(_, ban)| ban).collect()
    }

    /// Every ban in force (from this replica's memory while Redis fails).
    pub async fn bans(&self) -> Vec<BanEntry> {
        let local = &self.inner.local;
        let bans = match &self.inner.backend {
            Backend::Local => local.bans(),
            Backend::Redis(redis) => {
                let shared = async { Ok(redis.bans(true).await?.0) };
                self.shared(shared, |_| local.bans()).await
            }
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut entries: Vec<BanEntry> = bans
            .into_iter()
            .map(|(target, ban, note)| {
                let left = ban.until.saturating_duration_since(now);
                let cause = Cause::of(ban.reason, note.as_ref());
                BanEntry {
                    target,
                    origin: cause.origin,
                    reason: cause.reason,
                    by: cause.by,
                    expires_at: (wall + left)
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    expires_in_seconds: left.as_secs(),
                }
            })
            .collect();
        entries.sort_by_key(|b| b.target);
        entries
    }

    /// The bans in force on `target` or on a network containing it,
    /// narrowest first.
    pub async fn covering(&self, target: IpNet) -> Vec<BanEntry> {
        let mut bans = self.bans().await;
        bans.retain(|ban| ban.target.contains(&target));
        bans.sort_by_key(|ban| std::cmp::Reverse(ban.target.prefix_len()));
        bans
    }

    /// An operator's ban of an address or a network, with what they said
    /// about it. It is kept in this process too, so that the local fallback
    /// knows it.
    pub async fn ban(&self, target: IpNet, duration: Duration, note: &Note) {
        self.inner.local.ban(target, duration, note);
        if let Backend::Redis(redis) = &self.inner.backend {
            self.shared(redis.ban(target, duration, note), |_| ()).await;
        }
        tracing::info!(
            banned = %target,
            origin = "manual",
            reason = note.reason.as_deref().unwrap_or("manual"),
            by = note.by.as_deref(),
            seconds = duration.as_secs(),
            "banned by an operator"
        );
    }

    /// Lifts a ban; returns true if there was one on exactly `target`.
    pub async fn unban(&self, target: IpNet) -> bool {
        let mut lifted = self.inner.local.unban(target);
        if let Backend::Redis(redis) = &self.inner.backend {
            lifted |= self.shared(redis.unban(target), |_| false).await;
        }
        if lifted {
            tracing::info!(unbanned = %target, "unbanned by an operator");
        }
        lifted
    }

    /// Expires bans, forgets idle limiter keys, and connects to Redis if it
    /// never could. Returns the bans in force and the clients tracked, for
    /// the gauges.
    pub async fn maintain(&self) -> (usize, usize) {
        let (mut active, clients) = self.inner.local.maintain();
        if self.inner.local.take_changed() | self.snapshot_failing() {
            self.save_bans().await;
        }
        if let Backend::Redis(redis) = &self.inner.backend {
            if !redis.is_connected() {
                if let Err(error) = self.connect().await {
                    tracing::error!(%error, "state: wrong kind of redis");
                }
            }
            let shared = async { Ok(Some(redis.bans(false).await?.1)) };
            if let Some(shared) = self.shared(shared, |_| None).await {
                active = shared;
            }
        }
        (active, clients)
    }

    /// Tells the other replicas which routes this one detects an attack on
    /// (`detected`, in route order), and returns what they all say and what
    /// operators forced; `None` without a shared backend, or while it fails
    /// (each replica then goes by its own detector and forced modes).
    pub async fn share_attacks(
        &self,
        attack: &AttackMode,
        detected: &[bool],
    ) -> Option<Vec<SharedMode>> {
        let Backend::Redis(redis) = &self.inner.backend else {
            return None;
        };
        if !redis.is_connected() {
            return None;
        }
        let names = attack.routes();
        let routes: Vec<(&str, bool)> = names
            .iter()
            .map(String::as_str)
            .zip(detected.iter().copied())
            .collect();
        let shared = async { Ok(Some(redis.share_attacks(&routes).await?)) };
        self.shared(shared, |_| None).await
    }

    /// Forces attack mode on `routes` for every replica.
    pub async fn force_attack(&self, routes: &[&str], mode: Mode) {
        if let Backend::Redis(redis) = &self.inner.backend {
            self.shared(redis.force_attack(routes, mode), |_| ()).await;
        }
    }

    /// Reads the bans of `state.ban_snapshot` back, once, at start
    /// ([`snapshot::restore`]: a corrupt one is set aside, an unwritable
    /// path is an error).
    pub fn restore_bans(&self) -> Result<(), SnapshotError> {
        match &self.inner.snapshot {
            Some(path) => snapshot::restore(path, &self.inner.local),
            None => Ok(()),
        }
    }

    /// Writes the bans to `state.ban_snapshot`, if set: after a change, and
    /// at shutdown. A failure is logged, and retried at each maintenance
    /// until a write succeeds.
    pub async fn save_bans(&self) {
        if let Some(path) = &self.inner.snapshot {
            let failing = self.snapshot_failing();
            let bans = self.inner.local.bans();
            let saved = snapshot::save_in_background(path.clone(), bans, failing).await;
            self.inner.snapshot_failing.store(!saved, Ordering::Relaxed);
        }
    }

    /// Returns true if and only if the last write of the ban snapshot
    /// failed: the bans made since would not survive a restart.
    pub fn snapshot_failing(&self) -> bool {
        self.inner.snapshot_failing.load(Ordering::Relaxed)
    }

    /// Tracked clients in this process' suspicion table.
    pub fn tracked_clients(&self) -> usize {
        self.inner.local.tracked_clients()
    }

    /// Asks the shared backend. A failure is counted, logged now and then,
    /// and answered by `fallback` under the `on_backend_error` policy; the
    /// next answer from the backend ends the degraded state.
    ///
    /// Not an `async fn`: the call is boxed before the returned future is
    /// built. A Redis call's future is kilobytes, and unboxed it would sit
    /// inline in every request's future, on the local backend too, to be
    /// copied each time hyper and tokio move that future; boxed, only a
    /// call to Redis pays, with one allocation.
    fn shared<'a, T: 'a>(
        &'a self,
        call: impl Future<Output = Result<T, BackendError>> + 'a,
        fallback: impl FnOnce(OnBackendError) -> T + 'a,
    ) -> impl Future<Output = T> + 'a {
        let call = Box::pin(call);
        async move {
            match call.await {
                Ok(answer) => {
                    self.inner.health.recovered();
                    answer
                }
                Err(error) => {
                    self.inner.health.failed(&error, self.inner.on_error);
                    fallback(self.inner.on_error)
                }
            }
        }
    }

    fn screen_locally(&self, client: ClientIp, bans: bool) -> Result<(), Refusal> {
        let local = &self.inner.local;
        if bans {
            if let Some(ban) = local.ban_of(client.0) {
                return Err(Refusal::Banned(ban));
            }
        }
        local.admit_request(client.0).map_err(Refusal::Throttled)
    }
}
