//! The configuration file: TOML → typed, validated [`Config`].
//!
//! Parsing happens in two steps. Serde turns the text into typed structs
//! (addresses, durations, sizes and CIDRs are parsed by their own types, so a
//! bad value is reported at its key), then `Config::validate` checks what a
//! single field cannot see on its own (an upstream URL's scheme, a zero
//! connection cap). No later stage re-parses anything.
//!
//! Unknown keys are errors: a misspelt `header_read_timout` silently falling
//! back to its default is exactly the mistake an operator never notices.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use self::diagnostic::Location;

mod attack;
pub mod changes;
mod defaults;
pub mod diagnostic;
mod login;
mod preset;
mod protection;
mod risk;
mod subnet_ban;

pub use attack::Attack;
pub use login::{Action, BodyFormat, Leaked, Login, OnUnparsed};
pub use preset::Preset;

pub use risk::{Risk, RiskAction, ToolFingerprint};
pub use subnet_ban::SubnetBan;

pub use protection::{
    Backend, BanScope, Limit, Limits, OnBackendError, Rate, State, SubnetLimit, Suspicion,
};

/// A configuration that parsed and passed validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub upstream: Upstream,
    #[serde(default)]
    pub login: Vec<Login>,
    #[serde(default)]
    pub leaked: Leaked,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub risk: Risk,
    #[serde(default)]
    pub suspicion: Suspicion,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub attack: Attack,
    #[serde(default)]
    pub log: Log,
}

/// `[server]`: listeners and the protection of the proxy itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    #[serde(default)]
    pub listen_plain: Option<SocketAddr>,
    #[serde(default = "defaults::admin_listen")]
    pub admin_listen: SocketAddr,
    /// A file holding the bearer token for `/admin/*`; without it the admin
    /// API is off (metrics and probes stay on).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    /// A header in which a TLS-terminating load balancer among
    /// `trusted_proxies` passes the client's JA4 (e.g. `X-JA4`). Believed
    /// only from those peers; removed from everyone else's requests.
    #[serde(default)]
    pub fingerprint_header: Option<HeaderName>,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    #[serde(default = "defaults::tls_handshake_timeout")]
    pub tls_handshake_timeout: HumanDuration,
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    #[serde(default = "defaults::body_read_timeout")]
    pub body_read_timeout: HumanDuration,
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: HumanDuration,
    #[serde(default = "defaults::shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    #[serde(default = "defaults::max_header_size")]
    pub max_header_size: Size,
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    #[serde(default = "defaults::h2_max_concurrent_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Methods that may carry a body although many shops ignore one there
    /// (GET, HEAD, OPTIONS, DELETE, TRACE); by default such a body is refused.
    #[serde(default)]
    pub allow_body_on: Vec<MethodName>,
    /// Client-address headers removed from requests of untrusted peers.
    #[serde(default = "defaults::strip_client_headers")]
    pub strip_client_headers: Vec<HeaderName>,
}

/// `[upstream]`: the shop behind the proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: UpstreamUrl,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: HumanDuration,
    /// Extra CA certificates (PEM) for an `https://` upstream; without it the
    /// system roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::pool_idle_timeout")]
    pub pool_idle_timeout: HumanDuration,
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle: usize,
}

/// An HTTP method name such as `POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodName(pub http::Method);

/// An HTTP header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(pub http::HeaderName);

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "defaults::log_level")]
    pub level: LogLevel,
    /// How the access log (target `credgate::access`) is written.
    #[serde(default)]
    pub access_format: AccessFormat,
    /// The share of pass-through requests written to the access log, from 0
    /// to 1. Login attempts are always written.
    #[serde(default = "defaults::passthrough_sample")]
    pub passthrough_sample: f64,
}

/// `[log] access_format`: JSON fields like every other line, or nginx's
/// `combined` format for tools that already read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessFormat {
    #[default]
    Json,
    Combined,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// A `tracing` filter directive such as `info` or `credgate=debug,hyper=warn`.
#[derive(Debug, Clone)]
pub struct LogLevel(pub String);

/// A duration written for humans: `"10s"`, `"5m"`, `"250ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// A size written for humans: `"16KiB"`, `"1MiB"`, or a plain byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// The upstream base URL: `http://` or `https://`, an authority, no path.
#[derive(Debug, Clone)]
pub struct UpstreamUrl {
    pub scheme: Scheme,
    pub authority: Authority,
}

/// Why a configuration was refused. The message always names the file (when
/// there is one), the key and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}key `{key}`: {reason}", file_prefix(.file))]
    Invalid {
        file: Option<PathBuf>,
        key: String,
        reason: String,
    },
    /// A syntax or type error, where serde and the TOML parser found it.
    #[error("{}{}:{}: key `{key}`: {reason}", file_prefix(.file).trim_end_matches(' '), .at.line, .at.column)]
    Parse {
        file: Option<PathBuf>,
        key: String,
        reason: String,
        at: Location,
    },
    /// Every validation error at once: on one line here (a log field, the
    /// admin answer); `check-config` prints them one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<ConfigError>),
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

// === impl Config ===

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| e.in_file(path))
    }

    /// Parses and validates configuration text. A syntax or type error
    /// stops at the first; validation reports every error it finds.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".into()
            } else {
                key
            };
            let error = e.into_inner();
            let reason = diagnostic::with_suggestion(error.message().trim());
            match error.span() {
                Some(span) => ConfigError::Parse {
                    file: None,
                    key,
                    reason,
                    at: Location::of(text, span.start),
                },
                None => ConfigError::Invalid {
                    file: None,
                    key,
                    reason,
                },
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what no single field can, and reports every error found: the
    /// first of each section, and each of the top-level checks.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut invalid = |key: &str, reason: &str| {
            errors.push(ConfigError::Invalid {
                file: None,
                key: key.into(),
                reason: reason.into(),
            })
        };
        let s = &self.server;
        if s.max_connections == 0 {
            invalid("server.max_connections", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.log.passthrough_sample) {
            invalid("log.passthrough_sample", "must be between 0 and 1");
        }
        if s.max_headers == 0 {
            invalid("server.max_headers", "must be at least 1");
        }
        // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
        if s.max_header_size.0 < 8192 || s.max_header_size.0 > u64::from(u32::MAX) {
            invalid("server.max_header_size", "must be between 8KiB and 4GiB");
        }
        if s.h2_max_concurrent_streams == 0 {
            invalid("server.h2_max_concurrent_streams", "must be at least 1");
        }
        for (key, d) in [
            ("server.tls_handshake_timeout", s.tls_handshake_timeout),
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.body_read_timeout", s.body_read_timeout),
            ("server.idle_timeout", s.idle_timeout),
            ("upstream.connect_timeout", self.upstream.connect_timeout),
            ("upstream.request_timeout", self.upstream.request_timeout),
        ] {
            if d.0.is_zero() {
                invalid(key, "must be greater than zero");
            }
        }
        let addrs = [Some(s.listen), s.listen_plain, Some(s.admin_listen)];
        let bound: Vec<_> = addrs.iter().flatten().filter(|a| a.port() != 0).collect();
        for (i, a) in bound.iter().enumerate() {
            if bound[..i].contains(a) {
                invalid("server", &format!("address {a} is used by two listeners"));
            }
        }
        let sections = [
            self.validate_logins(),
            self.limits.validate(),
            self.risk.validate(),
            self.suspicion.validate(),
            self.state.validate(),
            self.attack.validate(),
        ];
        errors.extend(sections.into_iter().filter_map(Result::err));
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ConfigError::Many(errors)),
        }
    }
}

impl ConfigError {
    fn in_file(self, path: &Path) -> Self {
        let file = Some(path.to_owned());
        match self {
            Self::Invalid { key, reason, .. } => Self::Invalid { file, key, reason },
            Self::Parse {
                key, reason, at, ..
            } => Self::Parse {
                file,
                key,
                reason,
                at,
            },
            Self::Many(errors) => Self::Many(errors.into_iter().map(|e| e.in_file(path)).collect()),
            read @ Self::Read { .. } => read,
        }
    }

    /// Each error on its own: the list of [`ConfigError::Many`], or this one.
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            Self::Many(errors) => errors.iter().flat_map(Self::errors).collect(),
            one => vec![one],
        }
    }

    /// The offending line with a caret under the error, for a syntax or
    /// type error.
    pub fn snippet(&self) -> Option<String> {
        match self {
            Self::Parse { at, .. } => Some(at.snippet()),
            _ => None,
        }
    }
}

// === impl UpstreamUrl ===

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("not a URL ({e})"))?;
        let parts = uri.into_parts();
        let scheme = parts
            .scheme
            .filter(|s| *s == Scheme::HTTP || *s == Scheme::HTTPS)
            .ok_or("the scheme must be http:// or https://")?;
        let authority = parts.authority.ok_or("a host is required")?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        match parts.path_and_query.as_ref().map(|p| p.as_str()) {
            None | Some("/") | Some("") => Ok(Self { scheme, authority }),
            Some(_) => Err("a path or query after the host is not supported".into()),
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

// === Deserialize via FromStr, so that each value reports its own error ===

macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(
    HumanDuration,
    Size,
    UpstreamUrl,
    LogLevel,
    MethodName,
    HeaderName
);

impl FromStr for MethodName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<http::Method>() {
            Ok(m) if s.bytes().all(|b| b.is_ascii_uppercase()) => Ok(Self(m)),
            _ => Err(format!("invalid HTTP method {s:?}; write it like \"POST\"")),
        }
    }
}

impl FromStr for HeaderName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<http::HeaderName>()
            .map(Self)
            .map_err(|_| format!("invalid header name {s:?}"))
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(Self)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write it like \"10s\" or \"5m\""))
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<bytesize::ByteSize>()
            .map(|b| Self(b.as_u64()))
            .map_err(|e| format!("invalid size {s:?} ({e}); write it like \"16KiB\""))
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(s)
            .map(|_| Self(s.to_owned()))
            .map_err(|e| format!("invalid log level {s:?} ({e})"))
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: defaults::log_level(),
            access_format: AccessFormat::default(),
            passthrough_sample: defaults::passthrough_sample(),
        }
    }
}

/// A valid config for unit tests: the required keys, then `tables`
/// (`[[login]]`, `[limits]`...).
#[cfg(test)]
pub(crate) fn for_tests(tables: &str) -> Config {
    let text = format!(
        "[server]\ntls_cert = \"c\"\ntls_key = \"k\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n{tables}"
    );
    Config::from_toml(&text).expect("a valid test config")
}

#[cfg(test)]
mod tests;
