//! `[limits]`, `[suspicion]` and `[state]`: how login attempts are limited,
//! when a client becomes suspicious, and where that state lives.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration, SubnetBan};

/// `[limits]`: they apply to login attempts, except `all`, which applies to
/// every request per client. `ip`, `subnet`, `username` and `global` are on
/// by default, because an operator who has not tuned them yet is exactly the
/// one who needs them; `ip`, `subnet` and `username` are charged by failures,
/// so real customers who log in never use them up. Each can be set to
/// `"off"`. `all` is off unless configured.
///
/// `fingerprint` (per JA4) is off unless configured too: a popular
/// browser's JA4 is shared by a large share of a shop's customers, so its
/// key sums their typos, and no rate fits every shop. Operators set it after
/// reading `GET /admin/fingerprints`, usually with the browsers' fingerprints
/// in `[fingerprints] allowlist`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "defaults::ip_limit", deserialize_with = "switchable")]
    pub ip: Option<Limit>,
    #[serde(default = "defaults::subnet_limit", deserialize_with = "switchable")]
    pub subnet: Option<SubnetLimit>,
    #[serde(default = "defaults::username_limit", deserialize_with = "switchable")]
    pub username: Option<Limit>,
    #[serde(default = "defaults::global_limit", deserialize_with = "switchable")]
    pub global: Option<Limit>,
    #[serde(default, deserialize_with = "switchable")]
    pub all: Option<Limit>,
    /// Login attempts per client fingerprint (the JA4), charged by failures.
    #[serde(default, deserialize_with = "switchable")]
    pub fingerprint: Option<Limit>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ip: defaults::ip_limit(),
            subnet: defaults::subnet_limit(),
            username: defaults::username_limit(),
            global: defaults::global_limit(),
            all: None,
            fingerprint: None,
        }
    }
}

/// A limit's table, or `"off"` (also `false`): `Some(limit)` or `None`.
pub(super) fn switchable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Switch<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Switch<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table such as { rate = \"20/min\", burst = 10 }, or \"off\"")
        }

        fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
            match on {
                false => Ok(None),
                true => Err(E::custom("`true` says nothing: give the limit's table")),
            }
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            match value {
                "off" => Ok(None),
                other => Err(E::custom(format!(
                    "{other:?}: only \"off\" turns a limit off"
                ))),
            }
        }

        fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_any(Switch(std::marker::PhantomData))
}

/// A rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub rate: Rate,
    pub burst: NonZeroU32,
}

/// A limit per network: IPv4 addresses grouped by `ipv4_prefix`, IPv6 by
/// `ipv6_prefix`, so that rotating addresses inside one allocation does not
/// escape the limit.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetLimit {
    pub rate: Rate,
    pub burst: NonZeroU32,
    #[serde(default = "defaults::ipv4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "defaults::ipv6_prefix")]
    pub ipv6_prefix: u8,
}

/// `"20/min"`: this many events per period (`s`, `min`, `h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

/// `[suspicion]`: when a client is banned, and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspicion {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// The sliding window the counts below are taken over.
    #[serde(default = "defaults::window")]
    pub window: HumanDuration,
    /// Leaked pairs tried in the window that make a client suspicious.
    #[serde(default = "defaults::leaked_pair_hits")]
    pub leaked_pair_hits: u32,
    /// Attempts in the window before the failure ratio counts.
    #[serde(default = "defaults::min_attempts")]
    pub min_attempts: u32,
    /// Share of failed attempts (of at least `min_attempts`) that is suspicious.
    #[serde(default = "defaults::failure_ratio")]
    pub failure_ratio: f64,
    /// Distinct usernames in the window that, with mostly failing attempts,
    /// are a spray. Many usernames that mostly succeed are an office or a
    /// carrier NAT full of real customers: never a ban.
    #[serde(default = "defaults::distinct_usernames")]
    pub distinct_usernames: u32,
    /// An IPv6 client is its network of this length (its /64 allocation by
    /// default): suspicion and bans key it so, and a ban covers the network.
    #[serde(default = "defaults::ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Bans of several addresses of one IPv4 network become a ban of the
    /// network; `"off"` turns it off.
    #[serde(default = "defaults::subnet_ban", deserialize_with = "switchable")]
    pub subnet_ban: Option<SubnetBan>,
    /// Escalating ban durations: the first ban, the second, ... the last
    /// repeats.
    #[serde(default = "defaults::ban_ladder")]
    pub ban: Vec<HumanDuration>,
    /// How long a client's place on the ladder is remembered after its last
    /// ban ended.
    #[serde(default = "defaults::ban_memory")]
    pub ban_memory: HumanDuration,
    #[serde(default)]
    pub ban_scope: BanScope,
    /// Networks never limited or banned (monitoring, the office).
    #[serde(default)]
    pub allowlist: Vec<IpNet>,
    /// Networks always refused.
    #[serde(default)]
    pub denylist: Vec<IpNet>,
    /// Client fingerprints (JA4) exempt from the fingerprint limit and the
    /// fingerprint's reputation. Not from the address limits or bans: a
    /// fingerprint is no secret, a tool can copy a browser's.
    #[serde(default)]
    pub fingerprint_allowlist: Vec<String>,
    /// Client fingerprints (JA4) whose login attempts are always refused.
    #[serde(default)]
    pub fingerprint_denylist: Vec<String>,
}

/// What a ban refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanScope {
    /// The banned client's login attempts.
    #[default]
    Login,
    /// All of its traffic.
    All,
}

/// `[state]`: where limits, suspicion and bans live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    #[serde(default)]
    pub backend: Backend,
    /// `redis://[user:password@]host:port[/db]` or `rediss://` (TLS);
    /// required with `backend = "redis"`.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Seed nodes of a Redis Cluster (`redis://` or `rediss://`, no `/db`);
    /// required with `backend = "redis-cluster"`. The client learns the
    /// other nodes from them.
    #[serde(default)]
    pub redis_urls: Vec<String>,
    /// Starts every key, as written (`"shop1:"`), so that several shops (or
    /// staging and production) share one Redis or cluster without seeing
    /// each other's state.
    #[serde(default = "defaults::key_prefix")]
    pub key_prefix: String,
    /// How long one Redis command may take before it counts as a failure.
    #[serde(default = "defaults::redis_timeout")]
    pub redis_timeout: HumanDuration,
    /// What a login gets while the shared backend is failing.
    #[serde(default)]
    pub on_backend_error: OnBackendError,
    /// The most clients (and subnets, and usernames) tracked in memory; past
    /// it the least recently seen are forgotten first.
    #[serde(default = "defaults::max_tracked_clients")]
    pub max_tracked_clients: usize,
    /// With `backend = "local"`: a file the bans are kept in across
    /// restarts (written after a change and at shutdown, read at start).
    /// Off by default; Redis keeps its own.
    #[serde(default)]
    pub ban_snapshot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In this process.
    #[default]
    Local,
    /// In one Redis (a primary, optionally with replicas), shared by every
    /// replica.
    Redis,
    /// In a Redis Cluster: every script touches the keys of one hash slot.
    #[serde(rename = "redis-cluster")]
    RedisCluster,
}

impl OnBackendError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// What the state answers while Redis is slow or down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBackendError {
    /// The in-process state answers: limits and bans per replica.
    #[default]
    Local,
    /// Every attempt passes, nothing is recorded.
    Allow,
    /// Every login attempt is refused with a 429.
    Deny,
}

// === impl Rate ===

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid rate {s:?}; write it like \"20/min\", \"500/s\" or \"100/h\"");
        let (count, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Self { count, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Rate {
    /// The time between two events at this rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }
}

// === validation ===

impl Suspicion {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                file: None,
                key: format!("suspicion.{key}"),
                reason: reason.into(),
            })
        };
        if self.window.0.is_zero() {
            return invalid("window", "must be greater than zero");
        }
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            return invalid("failure_ratio", "must be above 0 and at most 1");
        }
        if self.distinct_usernames == 0 || self.distinct_usernames > 32 {
            return invalid("distinct_usernames", "must be between 1 and 32");
        }
        if self.ban.is_empty() || self.ban.iter().any(|d| d.0.is_zero()) {
            return invalid("ban", "needs at least one duration, each above zero");
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return invalid("ipv6_prefix", "must be between 1 and 128");
        }
        let lists = [
            ("fingerprint_allowlist", &self.fingerprint_allowlist),
            ("fingerprint_denylist", &self.fingerprint_denylist),
        ];
        for (key, list) in lists {
            if !list.iter().all(|ja4| is_ja4(ja4)) {
                return invalid(key, "each entry must be a JA4 as /admin/fingerprints lists it (t13d1516h2_8daaf6152771_e5627efa2ab1)");
            }
        }
        self.subnet_ban.as_ref().map_or(Ok(()), SubnetBan::validate)
    }
}

impl State {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                file: None,
                key: format!("state.{key}"),
                reason: reason.into(),
            })
        };
        if self.max_tracked_clients == 0 {
            return invalid("max_tracked_clients", "must be at least 1");
        }
        if self.redis_timeout.0.is_zero() {
            return invalid("redis_timeout", "must be greater than zero");
        }
        if self.key_prefix.is_empty()
            || self
                .key_prefix
                .chars()
                .any(|c| matches!(c, '{' | '}') || c.is_whitespace())
        {
            return invalid("key_prefix", "must be non-empty, without braces or spaces");
        }
        if self.backend == Backend::RedisCluster && self.redis_urls.is_empty() {
            return invalid(
                "redis_urls",
                "needs at least one seed node with backend = \"redis-cluster\"",
            );
        }
        if let Some(url) = &self.redis_url {
            check_url(url).map_err(|reason| invalid("redis_url", reason).unwrap_err())?;
        }
        for url in &self.redis_urls {
            check_url(url).map_err(|reason| invalid("redis_urls", reason).unwrap_err())?;
        }
        if self.ban_snapshot.is_some() && self.backend != Backend::Local {
            return invalid(
                "ban_snapshot",
                "is for backend = \"local\" only: Redis keeps its own bans",
            );
        }
        match (&self.backend, &self.redis_url) {
            (Backend::Redis, None) => invalid("redis_url", "is required with backend = \"redis\""),
            _ => Ok(()),
        }
    }
}

/// JA4's outline (36 characters, `_` at 10 and 23, letters and digits
/// elsewhere): enough to catch a truncated or mistyped entry here; the
/// fingerprint stage parses each exactly.
fn is_ja4(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            10 | 23 => *b == b'_',
            _ => b.is_ascii_alphanumeric(),
        })
}

fn check_url(url: &str) -> Result<(), &'static str> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must start with redis:// or rediss://");
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(drop)
        .map_err(|_| "is not a valid Redis URL")
}

impl Limits {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(subnet) = &self.subnet {
            let invalid = |key: &str, reason: &str| {
                Err(ConfigError::Invalid {
                    file: None,
                    key: format!("limits.subnet.{key}"),
                    reason: reason.into(),
                })
            };
            if !(1..=32).contains(&subnet.ipv4_prefix) {
                return invalid("ipv4_prefix", "must be between 1 and 32");
            }
            if !(1..=128).contains(&subnet.ipv6_prefix) {
                return invalid("ipv6_prefix", "must be between 1 and 128");
            }
        }
        Ok(())
    }
}

impl Default for Suspicion {
    fn default() -> Self {
        Self {
            enabled: true,
            window: defaults::window(),
            leaked_pair_hits: defaults::leaked_pair_hits(),
            min_attempts: defaults::min_attempts(),
            failure_ratio: defaults::failure_ratio(),
            distinct_usernames: defaults::distinct_usernames(),
            ipv6_prefix: defaults::ipv6_prefix(),
            subnet_ban: defaults::subnet_ban(),
            ban: defaults::ban_ladder(),
            ban_memory: defaults::ban_memory(),
            ban_scope: BanScope::default(),
            allowlist: Vec::new(),
            denylist: Vec::new(),
            fingerprint_allowlist: Vec::new(),
            fingerprint_denylist: Vec::new(),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            redis_url: None,
            redis_urls: Vec::new(),
            key_prefix: defaults::key_prefix(),
            redis_timeout: defaults::redis_timeout(),
            on_backend_error: OnBackendError::default(),
            max_tracked_clients: defaults::max_tracked_clients(),
            ban_snapshot: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let rate: Rate = "20/min".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_secs(3));
        let rate: Rate = "500/s".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(2));
        assert!("20".parse::<Rate>().is_err());
        assert!("0/s".parse::<Rate>().is_err());
        assert!("5/fortnight".parse::<Rate>().is_err());
    }

    #[test]
    fn fingerprint_lists_take_ja4s_only() {
        let ok: Suspicion =
            toml::from_str("fingerprint_denylist = [\"t13d1516h2_8daaf6152771_02713d6af862\"]")
                .unwrap();
        assert!(ok.validate().is_ok());
        for bad in [
            "t13d1516h2_8daaf6152771",
            "t13d1516h2-8daaf6152771-02713d6af862",
        ] {
            let list: Suspicion =
                toml::from_str(&format!("fingerprint_allowlist = [\"{bad}\"]")).unwrap();
            let e = list.validate().unwrap_err().to_string();
            assert!(e.contains("suspicion.fingerprint_allowlist"), "{e}");
        }
    }

    fn state_error(toml: &str) -> String {
        match toml::from_str::<State>(toml) {
            Ok(state) => state.validate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_state_table_takes_defaults_and_checks_redis() {
        let state: State = toml::from_str("").unwrap();
        assert_eq!(state.backend, Backend::Local);
        assert_eq!(state.on_backend_error, OnBackendError::Local);
        assert_eq!(state.redis_timeout.0, Duration::from_millis(50));
        let redis: State = toml::from_str(
            "backend = \"redis\"\nredis_url = \"rediss://:secret@cache:6380/2\"\n\
             on_backend_error = \"deny\"\nredis_timeout = \"20ms\"",
        )
        .unwrap();
        assert!(redis.validate().is_ok());

        let e = state_error("backend = \"redis\"");
        assert!(
            e.contains("state.redis_url") && e.contains("required"),
            "{e}"
        );
        let e = state_error("redis_url = \"http://cache\"");
        assert!(e.contains("state.redis_url"), "{e}");
        let e = state_error("redis_timeout = \"0s\"");
        assert!(e.contains("state.redis_timeout"), "{e}");
        let e = state_error("redis_pool = 4");
        assert!(e.contains("redis_pool"), "{e}");
        let e = state_error("backend = \"redis-cluster\"");
        assert!(e.contains("state.redis_urls"), "{e}");
        let e = state_error("redis_urls = [\"http://a\"]");
        assert!(e.contains("state.redis_urls"), "{e}");
        let e = state_error("key_prefix = \"{shop}\"");
        assert!(e.contains("state.key_prefix"), "{e}");
        let cluster: State = toml::from_str(
            "backend = \"redis-cluster\"\nkey_prefix = \"staging:\"\n\
             redis_urls = [\"redis://a:7000\", \"rediss://b:7001\"]",
        )
        .unwrap();
        assert_eq!(cluster.backend, Backend::RedisCluster);
        assert!(cluster.validate().is_ok());
        assert_eq!(state.key_prefix, "credgate:");
        let e = state_error("on_backend_error = \"panic\"");
        assert!(e.contains("panic"), "{e}");
    }
}
