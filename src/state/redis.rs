//! The shared backend: limits, suspicion counters and bans in Redis, so
//! that every replica behind a load balancer sees the same state.
//!
//! Each question the pipeline asks is one Lua script, loaded once and
//! called by hash (`redis::Script` sends EVALSHA and loads the script on
//! `NOSCRIPT`), so one question is one round trip and atomic. Time is Redis'
//! clock (`TIME`), never a replica's, so replicas with skewed clocks agree.
//!
//! Keys (prefix `credgate:`) carry a hash tag per thing they count:
//!
//! | key | type | what | TTL |
//! |---|---|---|---|
//! | `{ip:ADDR}:limit` | string | GCRA TAT of the per-address limit | until a full burst is back |
//! | `{ip:ADDR}:all` | string | the same for `limits.all` | same |
//! | `{ip:ADDR}:suspicion` | hash | two window buckets, the username sketch, ladder place | 2 windows, or ban + `ban_memory` |
//! | `{net:NET}:limit` | string | per-subnet GCRA | same as limits |
//! | `{user:HASH}:limit` | string | per-username GCRA (a keyed hash, never the name) | same |
//! | `{global}:limit` | string | the global GCRA | same |
//! | `{bans}:ip`, `{bans}:net`, `{bans}:reason` | zset, zset, hash | bans in force, by end time; reasons | purged when they end |
//! | `{hashkey}` | string | the shared key of the username hash | none |
//! | `{attack}:ROUTE:detected` | string | some replica detects an attack on the route | a few ticks, refreshed while on |
//! | `{attack}:ROUTE:forced` | string | `on` or `off`, forced by an operator | none: until set back to auto |
//!
//! One attempt's limits (address, subnet, username, global) are checked in
//! one script, which needs them on one node: this backend talks to a single
//! Redis (a primary, with replicas or Sentinel for failover), not Redis
//! Cluster. The tags keep each client's keys together should a Cluster
//! variant split the script per slot (address keys, subnet, username and
//! global would then be four calls, in parallel, and no longer atomic as a
//! whole).

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ipnet::IpNet;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::attack::{Mode, SharedMode};
use crate::config::{self, Limit};
use crate::rate_limit::{subnet_of, AttemptKeys, LimitKind, Throttled};
use crate::reputation::{Ban, BanReason, Observation, Rules};

use self::reply::{parse_reason, Clock, Tally};

mod reply;

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
    client: redis::Client,
    /// `None` until the first connection succeeds; the manager then
    /// reconnects on its own.
    connection: ArcSwapOption<ConnectionManager>,
    timeout: Duration,
    scripts: Scripts,
    /// The login limits in the order they are checked.
    limits: Vec<(LimitKind, Limit)>,
    prefixes: (u8, u8),
    all: Option<Limit>,
    rules: Rules,
    /// The username hash key every replica shares, once read from Redis.
    username_key: OnceLock<Vec<u8>>,
}

struct Scripts {
    limits: Script,
    refund: Script,
    screen: Script,
    observe: Script,
    ban: Script,
    unban: Script,
    bans: Script,
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
const PREFIX: &str = "credgate:";
const BANS_IP: &str = "credgate:{bans}:ip";
const BANS_NET: &str = "credgate:{bans}:net";
const BAN_REASONS: &str = "credgate:{bans}:reason";
const HASH_KEY: &str = "credgate:{hashkey}";
/// How long a replica's word that it detects an attack lasts unless it
/// repeats it (it does every second while it does): a replica that stops
/// or dies stops speaking for the others within this.
const ATTACK_DETECTED_TTL: Duration = Duration::from_secs(5);

// === impl Redis ===

impl Redis {
    /// Checks the URL; connects later ([`Redis::connect`]).
    pub fn new(config: &config::Config, url: &str) -> Result<Self, BackendError> {
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
            (LimitKind::Global, limits.global),
        ];
        let prefixes = limits
            .subnet
            .map_or((24, 64), |s| (s.ipv4_prefix, s.ipv6_prefix));
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: ArcSwapOption::empty(),
            timeout: config.state.redis_timeout.0,
            scripts: Scripts::new(),
            limits: ordered
                .into_iter()
                .filter_map(|(kind, limit)| limit.map(|l| (kind, l)))
                .collect(),
            prefixes,
            all: limits.all,
            rules: Rules::new(&config.suspicion),
            username_key: OnceLock::new(),
        })
    }

    /// Returns true if and only if a connection was ever made (the manager
    /// then reconnects by itself).
    pub fn is_connected(&self) -> bool {
        self.connection.load().is_some()
    }

    /// Connects, and reads (or sets) the shared username hash key.
    pub async fn connect(&self) -> Result<(), BackendError> {
        // Connecting may take longer than one command: a TLS handshake.
        let patience = (self.timeout * 20).max(Duration::from_secs(1));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(patience)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let manager = tokio::time::timeout(
            patience,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| BackendError::Timeout(patience))??;
        let mut connection = manager.clone();
        let () = redis::cmd("SET")
            .arg(HASH_KEY)
            .arg(fresh_key())
            .arg("NX")
            .query_async(&mut connection)
            .await?;
        let key: String = redis::cmd("GET")
            .arg(HASH_KEY)
            .query_async(&mut connection)
            .await?;
        let _ = self.username_key.set(key.into_bytes());
        self.connection.store(Some(manager.into()));
        Ok(())
    }

    /// The key every replica hashes usernames with, once connected.
    pub fn username_key(&self) -> Option<&[u8]> {
        self.username_key.get().map(Vec::as_slice)
    }

    /// Returns true if and only if `limits.all` is configured.
    pub fn limits_all(&self) -> bool {
        self.all.is_some()
    }

    /// Bans on `ip` (when `bans`) and the all-traffic limit.
    pub async fn screen(&self, ip: IpAddr, bans: bool) -> Result<Screened, BackendError> {
        let (interval, burst) = self.all.map_or((0, 0), |l| gcra(&l));
        let mut call = self.scripts.screen.prepare_invoke();
        call.key(BANS_IP)
            .key(BANS_NET)
            .key(BAN_REASONS)
            .key(format!("{PREFIX}{{ip:{ip}}}:all"))
            .arg(ip.to_string())
            .arg(u8::from(bans))
            .arg(interval)
            .arg(burst);
        let (now, until, reason, nets, wait): (u64, u64, String, Vec<String>, u64) =
            self.invoke(&call).await?;
        let clock = Clock::at(now);
        if until > now {
            return Ok(Screened::Banned(Ban {
                until: clock.instant(until),
                reason: parse_reason(&reason),
            }));
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
        Ok(match wait {
            0 => Screened::Clear,
            us => Screened::Throttled(Throttled {
                limit: LimitKind::All,
                retry_after: Duration::from_micros(us),
            }),
        })
    }

    /// The login limits for one attempt, in one round trip.
    pub async fn admit(&self, keys: &AttemptKeys) -> Result<Result<(), Throttled>, BackendError> {
        if self.limits.is_empty() {
            return Ok(Ok(()));
        }
        let mut call = self.scripts.limits.prepare_invoke();
        for (kind, limit) in &self.limits {
            let (interval, burst) = gcra(limit);
            call.key(self.limit_key(*kind, keys))
                .arg(interval)
                .arg(burst);
        }
        let (index, wait): (usize, u64) = self.invoke(&call).await?;
        Ok(match index.checked_sub(1) {
            None => Ok(()),
            Some(i) => Err(Throttled {
                limit: self
                    .limits
                    .get(i)
                    .ok_or(BackendError::Reply("limit index"))?
                    .0,
                retry_after: Duration::from_micros(wait),
            }),
        })
    }

    /// Gives back the per-client cells of an attempt that succeeded (the
    /// global limit is charged by attempts).
    pub async fn refund(&self, keys: &AttemptKeys) -> Result<(), BackendError> {
        let mut call = self.scripts.refund.prepare_invoke();
        let per_client = self
            .limits
            .iter()
            .filter(|(kind, _)| *kind != LimitKind::Global);
        let mut any = false;
        for (kind, limit) in per_client {
            call.key(self.limit_key(*kind, keys)).arg(gcra(limit).0);
            any = true;
        }
        if any {
            let _: i64 = self.invoke(&call).await?;
        }
        Ok(())
    }

    /// Records an attempt; bans the client if the rules say so. Returns the
    /// ban this replica made, if any.
    pub async fn observe(
        &self,
        ip: IpAddr,
        observation: Observation,
    ) -> Result<Option<Ban>, BackendError> {
        let window = self.rules.window();
        let mut call = self.scripts.observe.prepare_invoke();
        call.key(suspicion_key(ip))
            .arg(millis(window))
            .arg(u8::from(observation.failed == Some(true)))
            .arg(match observation.leaked_pair {
                true => i64::from(observation.username.leaked_bit()),
                false => -1,
            })
            .arg(observation.username.bit())
            .arg(millis(self.rules.memory()));
        let n: Vec<i64> = self.invoke(&call).await?;
        let tally = Tally::parse(&n).ok_or(BackendError::Reply("suspicion counters"))?;
        if tally.banned_until > tally.now {
            return Ok(None);
        }
        let into = Duration::from_millis(tally.now.saturating_sub(tally.since));
        let Some(reason) = self.rules.verdict(into, &tally.current, &tally.previous) else {
            return Ok(None);
        };
        let since_last = (tally.banned_until > 0)
            .then(|| Duration::from_millis(tally.now.saturating_sub(tally.banned_until)));
        let (duration, level) = self.rules.next_ban(tally.bans, since_last);
        let mut call = self.scripts.ban.prepare_invoke();
        call.key(BANS_IP)
            .key(BAN_REASONS)
            .key(suspicion_key(ip))
            .arg(ip.to_string())
            .arg(millis(duration))
            .arg(reason.as_str())
            .arg(level)
            .arg(millis(self.rules.memory()))
            .arg(millis(window));
        let (now, until): (u64, u64) = self.invoke(&call).await?;
        Ok((until > 0).then(|| Ban {
            until: Clock::at(now).instant(until),
            reason,
        }))
    }

    /// An operator's ban of an address or a network.
    pub async fn ban(&self, target: IpNet, duration: Duration) -> Result<(), BackendError> {
        let mut call = self.scripts.ban.prepare_invoke();
        call.key(ban_table(target))
            .key(BAN_REASONS)
            .arg(member(target))
            .arg(millis(duration))
            .arg(BanReason::Manual.as_str());
        let _: (u64, u64) = self.invoke(&call).await?;
        Ok(())
    }

    /// Lifts the ban on exactly `target`; returns true if there was one.
    pub async fn unban(&self, target: IpNet) -> Result<bool, BackendError> {
        let mut call = self.scripts.unban.prepare_invoke();
        call.key(ban_table(target)).key(BAN_REASONS);
        if is_address(target) {
            call.key(suspicion_key(target.addr()));
        }
        call.arg(member(target));
        let removed: u64 = self.invoke(&call).await?;
        Ok(removed > 0)
    }

    /// Drops ended bans; returns those in force (with `list`) and how many.
    pub async fn bans(&self, list: bool) -> Result<(Vec<(IpNet, Ban)>, usize), BackendError> {
        let mut call = self.scripts.bans.prepare_invoke();
        call.key(BANS_IP)
            .key(BANS_NET)
            .key(BAN_REASONS)
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
                let reason = parse_reason(&entry[2]);
                Some((
                    target,
                    Ban {
                        until: clock.instant(until),
                        reason,
                    },
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
                .arg(attack_key(route, "detected"))
                .arg(1)
                .arg("PX")
                .arg(millis(ATTACK_DETECTED_TTL))
                .ignore();
        }
        let read = pipe.cmd("MGET");
        for (route, _) in routes {
            read.arg(attack_key(route, "detected"))
                .arg(attack_key(route, "forced"));
        }
        let (values,): (Vec<Option<String>>,) = self.query(&pipe).await?;
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
            let key = attack_key(route, "forced");
            match mode {
                Mode::Auto => pipe.cmd("DEL").arg(key).ignore(),
                Mode::On | Mode::Off => pipe.cmd("SET").arg(key).arg(mode.as_str()).ignore(),
            };
        }
        let () = self.query(&pipe).await?;
        Ok(())
    }

    fn limit_key(&self, kind: LimitKind, keys: &AttemptKeys) -> String {
        match kind {
            LimitKind::Ip => format!("{PREFIX}{{ip:{}}}:limit", keys.client.0),
            LimitKind::Subnet => {
                let net = subnet_of(keys.client.0, self.prefixes.0, self.prefixes.1);
                format!("{PREFIX}{{net:{net}}}:limit")
            }
            LimitKind::Username => format!("{PREFIX}{{user:{:016x}}}:limit", keys.username.0),
            LimitKind::Global | LimitKind::All => format!("{PREFIX}{{global}}:limit"),
        }
    }

    /// Runs a pipeline within the command timeout.
    async fn query<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, BackendError> {
        let connection = self.connection.load_full();
        let mut connection =
            ConnectionManager::clone(connection.as_deref().ok_or(BackendError::NotConnected)?);
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
        let connection = self.connection.load_full();
        let mut connection =
            ConnectionManager::clone(connection.as_deref().ok_or(BackendError::NotConnected)?);
        tokio::time::timeout(self.timeout, call.invoke_async(&mut connection))
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
            unban: Script::new(include_str!("redis/unban.lua")),
            bans: with_gcra(include_str!("redis/bans.lua")),
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

fn suspicion_key(ip: IpAddr) -> String {
    format!("{PREFIX}{{ip:{ip}}}:suspicion")
}

/// One hash slot for every route's attack keys, so that one `MGET` reads
/// them all.
fn attack_key(route: &str, what: &str) -> String {
    format!("{PREFIX}{{attack}}:{route}:{what}")
}

fn is_address(target: IpNet) -> bool {
    target.prefix_len() == target.max_prefix_len()
}

fn ban_table(target: IpNet) -> &'static str {
    match is_address(target) {
        true => BANS_IP,
        false => BANS_NET,
    }
}

/// Addresses are stored bare (as the screen script looks them up),
/// networks as CIDR.
fn member(target: IpNet) -> String {
    match is_address(target) {
        true => target.addr().to_string(),
        false => target.trunc().to_string(),
    }
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
