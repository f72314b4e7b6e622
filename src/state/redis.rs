//! The shared backend: limits, suspicion counters and bans in Redis, so
//! that every replica behind a load balancer sees the same state.
//!
//! Each question the pipeline asks is one Lua script, loaded once and
//! called by hash (`redis::Script` sends EVALSHA and loads the script on
//! `NOSCRIPT`), so one question is one round trip and atomic. Time is Redis'
//! clock (`TIME`), never a replica's, so replicas with skewed clocks agree.
//!
//! Keys start with `key_prefix` (default `credgate:`, below `P:`) and carry
//! one hash tag each, so that every script touches one hash slot and the
//! same layout serves a single Redis and a Redis Cluster:
//!
//! | key | type | what | TTL |
//! |---|---|---|---|
//! | `P:{ip:ADDR}:limit` | string | GCRA TAT of the per-address limit | until a full burst is back |
//! | `P:{ip:ADDR}:all` | string | the same for `limits.all` | same |
//! | `P:{ip:ADDR}:suspicion` | hash | two window buckets, the username sketch, ladder place | 2 windows, or ban + `ban_memory` |
//! | `P:{ip:ADDR}:ban` | hash | the ban on the address: `until`, `reason` | ends with the ban |
//! | `P:{ip:NET}:suspicion`, `P:{ip:NET}:ban` | hash | the same for an IPv6 client, keyed by its network of `ipv6_prefix` | same |
//! | `P:{net:NET}:limit` | string | per-subnet GCRA | same as limits |
//! | `P:{net:NET}:ban` | hash | an operator's ban on a network, or an escalation | ends with the ban |
//! | `P:{net:NET}:escalation` | hash | the network's banned addresses and successful logins | `subnet_ban.within` |
//! | `P:{ip:ADDR}:risk`, `P:{net:NET}:risk` | hash | risk's memory: successes `s` and failures `f` of the client, its subnet | the suspicion window, from the first count |
//! | `P:{user:HASH}:limit` | string | per-username GCRA (a keyed hash, never the name) | same |
//! | `P:{user:HASH}:seen` | string | the username logged in here (risk) | `risk.device_cookie_max_age`, from the last success |
//! | `P:{global}:limit` | string | the global GCRA | same |
//! | `P:{bans}:ip`, `P:{bans}:net`, `P:{bans}:reason` | zset, zset, hash | the index `GET /admin/bans` lists | purged when they end |
//! | `P:{hashkey}` | string | the shared key of the username hash | none |
//! | `P:{attack}:ROUTE:detected` | string | some replica detects an attack on the route | a few ticks, refreshed while on |
//! | `P:{attack}:ROUTE:forced` | string | `on` or `off`, forced by an operator | none: until set back to auto |
//!
//! The ban keys decide; the index only lists. A ban writes its key and
//! then the index (an operator's ban: the index first), an unban removes
//! both; a failure between the two leaves at worst a listed ban that has
//! ended or an automatic ban unlisted until it ends.
//!
//! On a single Redis one attempt's limits are one script, atomic as a
//! whole, and screening reads the network ban index in the same script.
//! On a cluster (`backend = "redis-cluster"`) the limits are one script
//! per key, narrowest first, and a refusal gives back the cells the earlier
//! limits took; network bans are found by looking up the client's network
//! at each prefix length in use (a replica re-reads the lengths once a
//! second), never by scanning another slot.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use ipnet::IpNet;
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::attack::{Mode, SharedMode};
use crate::config::{self, Limit, SubnetBan};
use crate::rate_limit::{subnet_of, AttemptKeys, LimitKind, Throttled};
use crate::reputation::{Ban, BanReason, Observation, Rules};

use self::connection::{ConnectError, Connection, Topology};
use self::keys::{member, Keys};
use self::reply::{parse_reason, Clock, Tally};
use super::origin::{index_value, parse_index_value, Held, Note};

pub use self::connection::Mismatch;
pub use self::risk::{Counts, Seen};

mod connection;
mod escalation;
mod keys;
mod reply;
mod risk;

/// Why the shared backend did not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("not connected to redis")]
    NotConnected,
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(&'static str),
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
}

/// What screening a client found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screened {
    Clear,
    Banned(Ban),
    Throttled(Throttled),
}

/// The Redis backend. Cheap to share behind the state's `Arc`.
pub struct Redis {
    topology: Topology,
    /// `None` until the first connection succeeds; it then reconnects on
    /// its own.
    connection: ArcSwapOption<Connection>,
    timeout: Duration,
    scripts: Scripts,
    keys: Keys,
    /// Swapped whole by a reload. The counters are Redis keys, so a
    /// limit's new rate applies to the history already there.
    policy: ArcSwap<Policy>,
    /// The username hash key every replica shares, once read from Redis.
    username_key: OnceLock<Vec<u8>>,
    /// How long risk remembers that a username logged in here.
    risk_memory: Duration,
    /// Cluster only: the prefix lengths of the network bans in force, and
    /// when they were read. A std `Mutex`: held for a copy, never across
    /// an await.
    net_lengths: Mutex<NetLengths>,
}

/// What `[limits]` and `[suspicion]` say.
#[derive(Debug)]
struct Policy {
    /// The login limits in the order they are checked.
    limits: Vec<(LimitKind, Limit)>,
    prefixes: (u8, u8),
    all: Option<Limit>,
    rules: Rules,
    subnet_ban: Option<SubnetBan>,
}

impl Policy {
    fn new(config: &config::Config) -> Self {
        let limits = &config.limits;
        let ordered = [
            (LimitKind::Ip, limits.ip),
            (
                LimitKind::Subnet,
                limits.subnet.map(|s| Limit {
                    rate: s.rate,
                    burst: s.burst,
                }),
            ),
            (LimitKind::Username, limits.username),
            (LimitKind::Fingerprint, limits.fingerprint),
            (LimitKind::Global, limits.global),
        ];
        Self {
            limits: ordered
                .into_iter()
                .filter_map(|(kind, limit)| limit.map(|l| (kind, l)))
                .collect(),
            prefixes: limits
                .subnet
                .map_or((24, 64), |s| (s.ipv4_prefix, s.ipv6_prefix)),
            all: limits.all,
            rules: Rules::new(&config.suspicion),
            subnet_ban: config.suspicion.subnet_ban,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct NetLengths {
    read: Option<Instant>,
    v4: Vec<u8>,
    v6: Vec<u8>,
}

struct Scripts {
    limits: Script,
    refund: Script,
    screen: Script,
    observe: Script,
    ban: Script,
    index: Script,
    unban: Script,
    bans: Script,
    escalate: Script,
    risk: Script,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("connected", &self.connection.load().is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

const GCRA: &str = include_str!("redis/gcra.lua");
/// How stale a cluster replica's list of network ban lengths may be.
const LENGTHS_FOR: Duration = Duration::from_secs(1);
/// How long a replica's word that it detects an attack lasts unless it
/// repeats it (it does every second while it does): a replica that stops
/// or dies stops speaking for the others within this.
const ATTACK_DETECTED_TTL: Duration = Duration::from_secs(5);

// === impl Redis ===

impl Redis {
    /// Checks the URLs; connects later ([`Redis::connect`]).
    pub fn new(config: &config::Config) -> Result<Self, BackendError> {
        let state = &config.state;
        let topology = match state.backend {
            config::Backend::RedisCluster => {
                Topology::cluster(&state.redis_urls, state.redis_timeout.0)?
            }
            _ => Topology::single(state.redis_url.as_deref().unwrap_or_default())?,
        };
        Ok(Self {
            topology,
            connection: ArcSwapOption::empty(),
            timeout: state.redis_timeout.0,
            scripts: Scripts::new(),
            keys: Keys::new(&state.key_prefix, config.suspicion.ipv6_prefix),
            policy: ArcSwap::from_pointee(Policy::new(config)),
            username_key: OnceLock::new(),
            risk_memory: config.risk.device_cookie_max_age.0,
            net_lengths: Mutex::new(NetLengths::default()),
        })
    }

    /// Applies a reloaded `[limits]` and `[suspicion]`.
    pub fn reconfigure(&self, config: &config::Config) {
        self.policy.store(Arc::new(Policy::new(config)));
    }

    /// Returns true if and only if a connection was ever made (it then
    /// reconnects by itself).
    pub fn is_connected(&self) -> bool {
        self.connection.load().is_some()
    }

    /// Connects, checks the topology, and reads (or sets) the shared
    /// username hash key.
    pub async fn connect(&self) -> Result<(), BackendError> {
        // Connecting may take longer than one command: a TLS handshake.
        let patience = (self.timeout * 20).max(Duration::from_secs(1));
        let mut connection =
            tokio::time::timeout(patience, self.topology.connect(patience, self.timeout))
                .await
                .map_err(|_| BackendError::Timeout(patience))?
                .map_err(|e| match e {
                    ConnectError::Mismatch(m) => BackendError::Mismatch(m),
                    ConnectError::Redis(r) => BackendError::Redis(r),
                })?;
        let hash_key = self.keys.hash_key();
        let () = redis::cmd("SET")
            .arg(&hash_key)
            .arg(fresh_key())
            .arg("NX")
            .query_async(&mut connection)
            .await?;
        let key: String = redis::cmd("GET")
            .arg(&hash_key)
            .query_async(&mut connection)
            .await?;
        let _ = self.username_key.set(key.into_bytes());
        self.connection.store(Some(connection.into()));
        Ok(())
    }

    /// The key every replica hashes usernames with, once connected.
    pub fn username_key(&self) -> Option<&[u8]> {
        self.username_key.get().map(Vec::as_slice)
    }

    /// Returns true if and only if `limits.all` is configured.
    pub fn limits_all(&self) -> bool {
        self.policy.load().all.is_some()
    }

    /// Bans on `ip` (when `bans`) and the all-traffic limit.
    pub async fn screen(&self, ip: IpAddr, bans: bool) -> Result<Screened, BackendError> {
        let cluster = self.is_cluster()?;
        let policy = self.policy.load();
        let (interval, burst) = policy.all.map_or((0, 0), |l| gcra(&l));
        // An IPv6 client's ban is on its network, in the network's slot.
        let suspect = policy.rules.suspect(ip);
        let network = (bans && suspect != IpNet::from(ip)).then(|| self.keys.ban(suspect));
        let mut call = self.scripts.screen.prepare_invoke();
        call.key(self.keys.ban(IpNet::from(ip)))
            .key(self.keys.ip(ip, "all"));
        if !cluster {
            call.key(self.keys.index("net"));
            if let Some(key) = &network {
                call.key(key);
            }
        }
        call.arg(u8::from(bans)).arg(interval).arg(burst);
        let (now, until, reason, nets, wait): (u64, u64, String, Vec<String>, u64) =
            self.invoke(&call).await?;
        let clock = Clock::at(now);
        if until > now {
            return Ok(Screened::Banned(Ban {
                until: clock.instant(until),
                reason: parse_reason(&reason),
            }));
        }
        if let (true, Some(key)) = (cluster, &network) {
            let (until, reason): (Option<u64>, Option<String>) = self
                .query(redis::cmd("HMGET").arg(key).arg("until").arg("reason"))
                .await?;
            if let Some(until) = until.filter(|u| *u > now) {
                return Ok(Screened::Banned(Ban {
                    until: clock.instant(until),
                    reason: parse_reason(reason.as_deref().unwrap_or_default()),
                }));
            }
        }
        for pair in nets.chunks_exact(2) {
            let net: Option<IpNet> = pair[0].parse().ok();
            if net.is_some_and(|net| net.contains(&ip)) {
                let until = pair[1].parse::<f64>().unwrap_or(0.0) as u64;
                return Ok(Screened::Banned(Ban {
                    until: clock.instant(until),
                    reason: BanReason::Manual,
                }));
            }
        }
        if cluster && bans {
            if let Some(until) = self.network_ban(ip, now).await? {
                return Ok(Screened::Banned(Ban {
                    until: clock.instant(until),
                    reason: BanReason::Manual,
                }));
            }
        }
        Ok(match wait {
            0 => Screened::Clear,
            us => Screened::Throttled(Throttled {
                limit: LimitKind::All,
                retry_after: Duration::from_micros(us),
            }),
        })
    }

    /// Cluster only: the end of a network ban on `ip`, looked up at each
    /// prefix length in use, one key (and slot) per length.
    async fn network_ban(&self, ip: IpAddr, now: u64) -> Result<Option<u64>, BackendError> {
        let lengths = self.net_lengths().await?;
        let lengths = match ip {
            IpAddr::V4(_) => lengths.v4,
            IpAddr::V6(_) => lengths.v6,
        };
        for length in lengths {
            let Ok(net) = IpNet::new(ip, length) else {
                continue;
            };
            let until: Option<u64> = self
                .query(
                    redis::cmd("HGET")
                        .arg(self.keys.ban(net.trunc()))
                        .arg("until"),
                )
                .await?;
            if let Some(until) = until.filter(|u| *u > now) {
                return Ok(Some(until));
            }
        }
        Ok(None)
    }

    /// The prefix lengths of network bans, re-read from the index when
    /// older than [`LENGTHS_FOR`].
    async fn net_lengths(&self) -> Result<NetLengths, BackendError> {
        let cached = self.lock_lengths().clone();
        if cached.read.is_some_and(|at| at.elapsed() < LENGTHS_FOR) {
            return Ok(cached);
        }
        let read = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.keys.index("net"))
                    .arg(0)
                    .arg(-1),
            )
            .await;
        // The index's slot may be the one whose primary is down: the
        // lengths already known keep serving every other slot meanwhile.
        let nets: Vec<String> = match (read, cached.read) {
            (Ok(nets), _) => nets,
            (Err(_), Some(_)) => {
                self.lock_lengths().read = Some(Instant::now());
                return Ok(cached);
            }
            (Err(error), None) => return Err(error),
        };
        let mut fresh = NetLengths {
            read: Some(Instant::now()),
            ..NetLengths::default()
        };
        for net in nets.iter().filter_map(|n| n.parse::<IpNet>().ok()) {
            let list = match net {
                IpNet::V4(_) => &mut fresh.v4,
                IpNet::V6(_) => &mut fresh.v6,
            };
            if !list.contains(&net.prefix_len()) {
                list.push(net.prefix_len());
            }
        }
        // Longest first: the narrowest ban answers.
        fresh.v4.sort_unstable_by(|a, b| b.cmp(a));
        fresh.v6.sort_unstable_by(|a, b| b.cmp(a));
        *self.lock_lengths() = fresh.clone();
        Ok(fresh)
    }

    fn lock_lengths(&self) -> std::sync::MutexGuard<'_, NetLengths> {
        self.net_lengths
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The login limits for one attempt: one round trip on a single Redis,
    /// one per limit on a cluster.
    pub async fn admit(&self, keys: &AttemptKeys) -> Result<Result<(), Throttled>, BackendError> {
        let limits = self.limits_of(keys);
        if limits.is_empty() {
            return Ok(Ok(()));
        }
        if !self.is_cluster()? {
            return self.admit_together(keys, &limits).await;
        }
        for (i, limit) in limits.iter().enumerate() {
            let refused = self
                .admit_together(keys, std::slice::from_ref(limit))
                .await?;
            if let Err(throttled) = refused {
                // The attempt is refused: the narrower limits that took a
                // cell give it back.
                for taken in &limits[..i] {
                    self.refund_one(keys, taken).await?;
                }
                return Ok(Err(throttled));
            }
        }
        Ok(Ok(()))
    }

    /// `limits` in one script (their keys must share a node).
    async fn admit_together(
        &self,
        keys: &AttemptKeys,
        limits: &[(LimitKind, Limit)],
    ) -> Result<Result<(), Throttled>, BackendError> {
        let mut call = self.scripts.limits.prepare_invoke();
        for (kind, limit) in limits {
            let (interval, burst) = gcra(limit);
            call.key(self.limit_key(*kind, keys))
                .arg(interval)
                .arg(burst);
        }
        let (index, wait): (usize, u64) = self.invoke(&call).await?;
        Ok(match index.checked_sub(1) {
            None => Ok(()),
            Some(i) => Err(Throttled {
                limit: limits.get(i).ok_or(BackendError::Reply("limit index"))?.0,
                retry_after: Duration::from_micros(wait),
            }),
        })
    }

    /// Gives back the per-client cells of an attempt that succeeded (the
    /// global limit is charged by attempts).
    pub async fn refund(&self, keys: &AttemptKeys) -> Result<(), BackendError> {
        let per_client: Vec<_> = self
            .limits_of(keys)
            .into_iter()
            .filter(|(kind, _)| *kind != LimitKind::Global)
            .collect();
        if per_client.is_empty() {
            return Ok(());
        }
        if self.is_cluster()? {
            for limit in &per_client {
                self.refund_one(keys, limit).await?;
            }
            return Ok(());
        }
        let mut call = self.scripts.refund.prepare_invoke();
        for (kind, limit) in &per_client {
            call.key(self.limit_key(*kind, keys)).arg(gcra(limit).0);
        }
        let _: i64 = self.invoke(&call).await?;
        Ok(())
    }

    /// Gives back the username cell only (see
    /// [`crate::rate_limit::Limiters::refund_username`]).
    pub async fn refund_username(&self, keys: &AttemptKeys) -> Result<(), BackendError> {
        let policy = self.policy.load();
        match policy
            .limits
            .iter()
            .find(|(kind, _)| *kind == LimitKind::Username && keys.username_limited())
        {
            Some(limit) => self.refund_one(keys, limit).await,
            None => Ok(()),
        }
    }

    async fn refund_one(
        &self,
        keys: &AttemptKeys,
        (kind, limit): &(LimitKind, Limit),
    ) -> Result<(), BackendError> {
        let mut call = self.scripts.refund.prepare_invoke();
        call.key(self.limit_key(*kind, keys)).arg(gcra(limit).0);
        let _: i64 = self.invoke(&call).await?;
        Ok(())
    }

    /// Records an attempt; bans the client if the rules say so, and its
    /// network if that was the last straw. Returns the bans this replica
    /// made, each with what it covers.
    pub async fn observe(
        &self,
        ip: IpAddr,
        observation: Observation,
    ) -> Result<Vec<(IpNet, Ban)>, BackendError> {
        if observation.failed == Some(false) {
            self.count_success(ip).await?;
        }
        let policy = self.policy.load_full();
        let rules = &policy.rules;
        let window = rules.window();
        let target = rules.suspect(ip);
        let mut call = self.scripts.observe.prepare_invoke();
        call.key(self.keys.suspicion(target))
            .arg(millis(window))
            .arg(u8::from(observation.failed == Some(true)))
            .arg(match observation.leaked_pair {
                true => i64::from(observation.username.leaked_bit()),
                false => -1,
            })
            .arg(observation.username.bit())
            .arg(millis(rules.memory()));
        let n: Vec<i64> = self.invoke(&call).await?;
        let tally = Tally::parse(&n).ok_or(BackendError::Reply("suspicion counters"))?;
        if tally.banned_until > tally.now {
            return Ok(Vec::new());
        }
        let into = Duration::from_millis(tally.now.saturating_sub(tally.since));
        let Some(reason) = rules.verdict(into, &tally.current, &tally.previous) else {
            return Ok(Vec::new());
        };
        let since_last = (tally.banned_until > 0)
            .then(|| Duration::from_millis(tally.now.saturating_sub(tally.banned_until)));
        let (duration, level) = rules.next_ban(tally.bans, since_last);
        let mut call = self.scripts.ban.prepare_invoke();
        call.key(self.keys.ban(target))
            .key(self.keys.suspicion(target))
            .arg(millis(duration))
            .arg(reason.as_str())
            .arg(level)
            .arg(millis(rules.memory()))
            .arg(millis(window));
        let (now, until): (u64, u64) = self.invoke(&call).await?;
        if until == 0 {
            return Ok(Vec::new());
        }
        self.index_add(target, until, Duration::ZERO, &index_value(reason, None))
            .await?;
        let ban = Ban {
            until: Clock::at(now).instant(until),
            reason,
        };
        let mut bans = vec![(target, ban)];
        if let Some((net, now, until)) = self.escalate(ip, until).await? {
            let reason = BanReason::SubnetEscalation;
            let until = Clock::at(now).instant(until);
            bans.push((net, Ban { until, reason }));
        }
        Ok(bans)
    }

    /// An operator's ban of an address or a network: listed first, so that
    /// a failure half-way never leaves a ban in force that nobody sees.
    pub async fn ban(
        &self,
        target: IpNet,
        duration: Duration,
        note: &Note,
    ) -> Result<(), BackendError> {
        let listed = index_value(BanReason::Manual, Some(note));
        self.index_add(target, 0, duration, &listed).await?;
        let mut call = self.scripts.ban.prepare_invoke();
        call.key(self.keys.ban(target))
            .arg(millis(duration))
            .arg(BanReason::Manual.as_str());
        let _: (u64, u64) = self.invoke(&call).await?;
        if !self.keys.is_client(target) {
            // This replica sees its own network ban at once.
            self.lock_lengths().read = None;
        }
        Ok(())
    }

    /// Lists a ban in the index (`until` 0: now + `duration`) with its
    /// reason (and a manual ban's note: [`index_value`]).
    async fn index_add(
        &self,
        target: IpNet,
        until: u64,
        duration: Duration,
        reason: &str,
    ) -> Result<(), BackendError> {
        let mut call = self.scripts.index.prepare_invoke();
        call.key(self.keys.index_of(target))
            .key(self.keys.index("reason"))
            .arg("add")
            .arg(member(target))
            .arg(until)
            .arg(millis(duration))
            .arg(reason);
        let _: u64 = self.invoke(&call).await?;
        Ok(())
    }

    /// Lifts the ban on exactly `target`; returns true if there was one.
    pub async fn unban(&self, target: IpNet) -> Result<bool, BackendError> {
        let mut call = self.scripts.unban.prepare_invoke();
        call.key(self.keys.ban(target));
        match self.keys.is_client(target) {
            true => call.key(self.keys.suspicion(target)).arg("client"),
            false => call.key(self.keys.escalation(target)).arg("net"),
        };
        let removed: u64 = self.invoke(&call).await?;
        let mut call = self.scripts.index.prepare_invoke();
        call.key(self.keys.index_of(target))
            .key(self.keys.index("reason"))
            .arg("remove")
            .arg(member(target));
        let listed: u64 = self.invoke(&call).await?;
        Ok(removed + listed > 0)
    }

    /// Drops ended bans from the index; returns those in force (with
    /// `list`) and how many.
    pub async fn bans(&self, list: bool) -> Result<(Vec<Held>, usize), BackendError> {
        let mut call = self.scripts.bans.prepare_invoke();
        call.key(self.keys.index("ip"))
            .key(self.keys.index("net"))
            .key(self.keys.index("reason"))
            .arg(if list { "list" } else { "count" });
        let (now, count, flat): (u64, usize, Vec<String>) = self.invoke(&call).await?;
        let clock = Clock::at(now);
        let bans = flat
            .chunks_exact(3)
            .filter_map(|entry| {
                let target: IpNet = entry[0]
                    .parse()
                    .or_else(|_| entry[0].parse::<IpAddr>().map(IpNet::from))
                    .ok()?;
                let until = entry[1].parse::<f64>().ok()? as u64;
                let (reason, note) = parse_index_value(&entry[2]);
                Some((
                    target,
                    Ban {
                        until: clock.instant(until),
                        reason,
                    },
                    note,
                ))
            })
            .collect();
        Ok((bans, count))
    }

    /// Says which of `routes` this replica detects an attack on, and reads
    /// what every replica says and what operators forced, in one round trip.
    pub async fn share_attacks(
        &self,
        routes: &[(&str, bool)],
    ) -> Result<Vec<SharedMode>, BackendError> {
        if routes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (route, _) in routes.iter().filter(|(_, detected)| *detected) {
            pipe.cmd("SET")
                .arg(self.keys.attack(route, "detected"))
                .arg(1)
                .arg("PX")
                .arg(millis(ATTACK_DETECTED_TTL))
                .ignore();
        }
        let read = pipe.cmd("MGET");
        for (route, _) in routes {
            read.arg(self.keys.attack(route, "detected"))
                .arg(self.keys.attack(route, "forced"));
        }
        let (values,): (Vec<Option<String>>,) = self.query_pipe(&pipe).await?;
        if values.len() != 2 * routes.len() {
            return Err(BackendError::Reply("attack mode keys"));
        }
        Ok(values
            .chunks_exact(2)
            .map(|pair| SharedMode {
                detected: pair[0].is_some(),
                mode: match pair[1].as_deref() {
                    Some("on") => Mode::On,
                    Some("off") => Mode::Off,
                    _ => Mode::Auto,
                },
            })
            .collect())
    }

    /// An operator's mode for `routes`, for every replica.
    pub async fn force_attack(&self, routes: &[&str], mode: Mode) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        for route in routes {
            let key = self.keys.attack(route, "forced");
            match mode {
                Mode::Auto => pipe.cmd("DEL").arg(key).ignore(),
                Mode::On | Mode::Off => pipe.cmd("SET").arg(key).arg(mode.as_str()).ignore(),
            };
        }
        let () = self.query_pipe(&pipe).await?;
        Ok(())
    }

    /// The login limits that apply to `keys`: the fingerprint limit needs a
    /// fingerprint (none on the cleartext listener).
    fn limits_of(&self, keys: &AttemptKeys) -> Vec<(LimitKind, Limit)> {
        (self.policy.load().limits.iter())
            .filter(|(kind, _)| *kind != LimitKind::Fingerprint || keys.fingerprint.is_some())
            .filter(|(kind, _)| *kind != LimitKind::Username || keys.username_limited())
            .copied()
            .collect()
    }

    fn limit_key(&self, kind: LimitKind, keys: &AttemptKeys) -> String {
        match kind {
            LimitKind::Ip => self.keys.ip(keys.client.0, "limit"),
            LimitKind::Subnet => {
                let (v4, v6) = self.policy.load().prefixes;
                let net = subnet_of(keys.client.0, v4, v6);
                self.keys.net_limit(net)
            }
            LimitKind::Username => self.keys.user_limit(keys.username.0),
            LimitKind::Fingerprint => match keys.fingerprint {
                Some(ja4) => self.keys.fingerprint_limit(ja4.as_str()),
                // limits_of leaves the limit out without a fingerprint.
                None => self.keys.global_limit(),
            },
            LimitKind::Global | LimitKind::All => self.keys.global_limit(),
        }
    }

    fn connection(&self) -> Result<Connection, BackendError> {
        let connection = self.connection.load();
        Ok(Connection::clone(
            connection.as_deref().ok_or(BackendError::NotConnected)?,
        ))
    }

    fn is_cluster(&self) -> Result<bool, BackendError> {
        Ok(self.connection()?.is_cluster())
    }

    /// Runs a pipeline within the command timeout.
    async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, BackendError> {
        let mut connection = self.connection()?;
        tokio::time::timeout(self.timeout, pipe.query_async(&mut connection))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))?
            .map_err(BackendError::from)
    }

    /// Runs one script within the command timeout.
    async fn invoke<T: FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut connection = self.connection()?;
        tokio::time::timeout(self.timeout, call.invoke_async(&mut connection))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))?
            .map_err(BackendError::from)
    }

    /// Runs one command within the command timeout.
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, BackendError> {
        let mut connection = self.connection()?;
        tokio::time::timeout(self.timeout, command.query_async(&mut connection))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))?
            .map_err(BackendError::from)
    }
}

// === impl Scripts ===

impl Scripts {
    fn new() -> Self {
        let with_gcra = |body: &str| Script::new(&format!("{GCRA}\n{body}"));
        Self {
            limits: with_gcra(include_str!("redis/limits.lua")),
            refund: with_gcra(include_str!("redis/refund.lua")),
            screen: with_gcra(include_str!("redis/screen.lua")),
            observe: with_gcra(include_str!("redis/observe.lua")),
            ban: with_gcra(include_str!("redis/ban.lua")),
            index: with_gcra(include_str!("redis/index.lua")),
            unban: Script::new(include_str!("redis/unban.lua")),
            bans: with_gcra(include_str!("redis/bans.lua")),
            escalate: with_gcra(include_str!("redis/escalate.lua")),
            risk: risk::script(),
        }
    }
}

fn gcra(limit: &Limit) -> (u64, u32) {
    let interval = u64::try_from(limit.rate.interval().as_micros()).unwrap_or(u64::MAX);
    (interval.max(1), limit.burst.get())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A random key for the username hash, used if no replica set one before.
fn fresh_key() -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new();
    let (a, b) = (random.hash_one(1u8), random.hash_one(2u8));
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests;
