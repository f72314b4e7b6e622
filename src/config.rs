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

mod protection;

pub use protection::{
    Backend, BanScope, Limit, Limits, OnBackendError, Rate, State, SubnetLimit, Suspicion,
};

use crate::leaked::UsernameNormalization;
use crate::route::BodyFormat;
use crate::verdict::Action;

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
    pub suspicion: Suspicion,
    #[serde(default)]
    pub state: State,
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

/// `[[login]]`: one protected login endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The `route` label of metrics; derived from `path` when absent.
    #[serde(default)]
    pub name: Option<String>,
    pub path: String,
    #[serde(default = "defaults::login_methods")]
    pub methods: Vec<MethodName>,
    #[serde(default)]
    pub format: BodyFormat,
    #[serde(default = "defaults::username_field")]
    pub username_field: String,
    #[serde(default = "defaults::password_field")]
    pub password_field: String,
    #[serde(default = "defaults::max_body")]
    pub max_body: Size,
    /// Whether `/Login` is a different path from `/login`. Off by default:
    /// many shops' routers ignore case, and a miss is a bypass.
    #[serde(default)]
    pub case_sensitive: bool,
    /// How the shop says "wrong password": these statuses...
    #[serde(default = "defaults::failure_status")]
    pub failure_status: Vec<u16>,
    /// ... or a redirect whose `Location` starts with this ...
    #[serde(default)]
    pub failure_redirect: Option<String>,
    /// ... or this header in the response.
    #[serde(default)]
    pub failure_header: Option<HeaderName>,
}

/// `[leaked]`: what to do with credentials known from breaches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaked {
    /// A `pairs` filter file (`credgate build-filter --kind pairs`).
    #[serde(default)]
    pub pairs_filter: Option<PathBuf>,
    /// A `passwords` filter file (`credgate build-filter --kind passwords`).
    #[serde(default)]
    pub passwords_filter: Option<PathBuf>,
    /// Must match the rule the pairs filter was built with.
    #[serde(default)]
    pub username_normalization: UsernameNormalization,
    /// How often the filter files are checked for replacement; `0s` turns
    /// the watch off (SIGHUP and `POST /admin/reload` still reload).
    #[serde(default = "defaults::watch_interval")]
    pub watch_interval: HumanDuration,
    #[serde(default = "defaults::on_leaked_pair")]
    pub on_leaked_pair: Action,
    #[serde(default = "defaults::on_leaked_password")]
    pub on_leaked_password: Action,
    #[serde(default = "defaults::annotate_header")]
    pub annotate_header: HeaderName,
    /// Replaces the built-in 403 body; served as HTML, JSON or text by the
    /// file's extension.
    #[serde(default)]
    pub block_body_file: Option<PathBuf>,
    #[serde(default)]
    pub on_unparsed: OnUnparsed,
}

/// What to do with a login body that cannot be parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnparsed {
    /// 400; the shop never sees it.
    #[default]
    Reject,
    /// Forward as received, counted as `unparsed`.
    Forward,
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

/// Login bodies are read whole into memory; this bounds what one request
/// can make the proxy hold.
const MAX_LOGIN_BODY: u64 = 1024 * 1024;

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

    /// Parses and validates configuration text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                file: None,
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: e.into_inner().message().trim().to_owned(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                file: None,
                key: key.into(),
                reason: reason.into(),
            })
        };
        let s = &self.server;
        if s.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if s.max_headers == 0 {
            return invalid("server.max_headers", "must be at least 1");
        }
        // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
        if s.max_header_size.0 < 8192 || s.max_header_size.0 > u64::from(u32::MAX) {
            return invalid("server.max_header_size", "must be between 8KiB and 4GiB");
        }
        if s.h2_max_concurrent_streams == 0 {
            return invalid("server.h2_max_concurrent_streams", "must be at least 1");
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
                return invalid(key, "must be greater than zero");
            }
        }
        self.validate_logins()?;
        self.limits.validate()?;
        self.suspicion.validate()?;
        self.state.validate()?;
        let addrs = [Some(s.listen), s.listen_plain, Some(s.admin_listen)];
        let bound: Vec<_> = addrs.iter().flatten().filter(|a| a.port() != 0).collect();
        for (i, a) in bound.iter().enumerate() {
            if bound[..i].contains(a) {
                return invalid("server", &format!("address {a} is used by two listeners"));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_logins(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (i, login) in self.login.iter().enumerate() {
            let key = |field: &str| format!("login[{i}].{field}");
            let invalid = |field: &str, reason: String| ConfigError::Invalid {
                file: None,
                key: key(field),
                reason,
            };
            if !login.path.starts_with('/') || login.path.contains(['?', '#']) {
                return Err(invalid(
                    "path",
                    "must start with / and have no query".into(),
                ));
            }
            if login.methods.is_empty() {
                return Err(invalid("methods", "must name at least one method".into()));
            }
            for (field, value) in [
                ("username_field", &login.username_field),
                ("password_field", &login.password_field),
            ] {
                if value.trim_matches('/').is_empty() {
                    return Err(invalid(field, "must not be empty".into()));
                }
                if login.format == BodyFormat::Form && value.starts_with('/') {
                    return Err(invalid(
                        field,
                        "a JSON pointer needs format = \"json\"".into(),
                    ));
                }
            }
            if login.username_field == login.password_field {
                return Err(invalid(
                    "password_field",
                    "must differ from username_field".into(),
                ));
            }
            if login.max_body.0 == 0 || login.max_body.0 > MAX_LOGIN_BODY {
                return Err(invalid(
                    "max_body",
                    "must be between 1 byte and 1MiB".into(),
                ));
            }
            let name = login
                .name
                .clone()
                .unwrap_or_else(|| crate::route::derive_name(&login.path));
            let label_safe = name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if name.is_empty() || !label_safe || name == "passthrough" {
                return Err(invalid(
                    "name",
                    format!("{name:?} must be [a-z0-9_]+, not \"passthrough\""),
                ));
            }
            let path = crate::route::normalize(&login.path).to_ascii_lowercase();
            if let Some((other, _)) = seen.iter().find(|(n, p)| *n == name || *p == path) {
                return Err(invalid(
                    "path",
                    format!("the route {name:?} repeats the route {other:?}"),
                ));
            }
            seen.push((name, path));
        }
        Ok(())
    }
}

impl ConfigError {
    fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Invalid { key, reason, .. } => Self::Invalid {
                file: Some(path.to_owned()),
                key,
                reason,
            },
            read @ Self::Read { .. } => read,
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

impl Default for Leaked {
    fn default() -> Self {
        Self {
            pairs_filter: None,
            passwords_filter: None,
            username_normalization: UsernameNormalization::default(),
            watch_interval: defaults::watch_interval(),
            on_leaked_pair: defaults::on_leaked_pair(),
            on_leaked_password: defaults::on_leaked_password(),
            annotate_header: defaults::annotate_header(),
            block_body_file: None,
            on_unparsed: OnUnparsed::default(),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: defaults::log_level(),
        }
    }
}

/// Every default in one place; `config/credgate.example.toml` repeats them.
mod defaults {
    use super::*;

    fn secs(s: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(s))
    }

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 8443))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9090))
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn tls_handshake_timeout() -> HumanDuration {
        secs(10)
    }
    pub fn header_read_timeout() -> HumanDuration {
        secs(10)
    }
    pub fn body_read_timeout() -> HumanDuration {
        secs(10)
    }
    pub fn idle_timeout() -> HumanDuration {
        secs(60)
    }
    pub fn shutdown_grace() -> HumanDuration {
        secs(30)
    }
    pub fn max_header_size() -> Size {
        Size(64 * 1024)
    }
    pub fn max_headers() -> usize {
        100
    }
    pub fn h2_max_concurrent_streams() -> u32 {
        100
    }
    pub fn connect_timeout() -> HumanDuration {
        secs(2)
    }
    pub fn request_timeout() -> HumanDuration {
        secs(30)
    }
    pub fn pool_idle_timeout() -> HumanDuration {
        secs(90)
    }
    pub fn pool_max_idle() -> usize {
        256
    }
    pub fn login_methods() -> Vec<MethodName> {
        vec![MethodName(http::Method::POST)]
    }
    pub fn username_field() -> String {
        "username".into()
    }
    pub fn password_field() -> String {
        "password".into()
    }
    pub fn max_body() -> Size {
        Size(16 * 1024)
    }
    pub fn on_leaked_pair() -> Action {
        Action::Block
    }
    pub fn on_leaked_password() -> Action {
        Action::Annotate
    }
    pub fn watch_interval() -> HumanDuration {
        secs(5)
    }
    pub fn annotate_header() -> HeaderName {
        HeaderName(http::HeaderName::from_static("credgate-leaked"))
    }
    pub fn failure_status() -> Vec<u16> {
        vec![401, 403]
    }
    pub fn ipv4_prefix() -> u8 {
        24
    }
    pub fn ipv6_prefix() -> u8 {
        64
    }
    pub fn yes() -> bool {
        true
    }
    pub fn window() -> HumanDuration {
        secs(600)
    }
    pub fn leaked_pair_hits() -> u32 {
        3
    }
    pub fn min_attempts() -> u32 {
        10
    }
    pub fn failure_ratio() -> f64 {
        0.8
    }
    pub fn distinct_usernames() -> u32 {
        8
    }
    pub fn ban_ladder() -> Vec<HumanDuration> {
        vec![secs(300), secs(3600), secs(86400)]
    }
    pub fn ban_memory() -> HumanDuration {
        secs(86400)
    }
    pub fn redis_timeout() -> HumanDuration {
        HumanDuration(Duration::from_millis(50))
    }
    pub fn max_tracked_clients() -> usize {
        1_000_000
    }
    pub fn log_level() -> LogLevel {
        LogLevel("info".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        tls_cert = "cert.pem"
        tls_key = "key.pem"
        [upstream]
        url = "http://127.0.0.1:8080"
    "#;

    fn error_of(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_takes_documented_defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.server.admin_listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(c.server.header_read_timeout.0, Duration::from_secs(10));
        assert_eq!(c.server.max_header_size.0, 65536);
        assert_eq!(c.upstream.url.to_string(), "http://127.0.0.1:8080");
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("[upstream]", "[upstream]\nretries = 3");
        let e = error_of(&text);
        assert!(e.contains("upstream"), "{e}");
        assert!(e.contains("retries"), "{e}");
    }

    #[test]
    fn bad_address_is_named() {
        let text = MINIMAL.replace("[server]", "[server]\nlisten = \"0.0.0.0:99999\"");
        let e = error_of(&text);
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn bad_duration_is_named() {
        let text = MINIMAL.replace("[server]", "[server]\nidle_timeout = \"ten seconds\"");
        let e = error_of(&text);
        assert!(e.contains("server.idle_timeout"), "{e}");
        assert!(e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn sizes_and_cidrs_parse() {
        let text = MINIMAL.replace(
            "[server]",
            "[server]\nmax_header_size = \"32KiB\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]",
        );
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.server.max_header_size.0, 32 * 1024);
        assert_eq!(c.server.trusted_proxies.len(), 2);
        let bad = MINIMAL.replace("[server]", "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]");
        assert!(error_of(&bad).contains("server.trusted_proxies"));
    }

    #[test]
    fn upstream_url_is_checked() {
        for (url, reason) in [
            ("ftp://shop", "scheme"),
            ("http://shop/app", "path"),
            ("shop:8080", "scheme"),
            ("http://user:pw@shop", "credentials"),
        ] {
            let e = error_of(&MINIMAL.replace("http://127.0.0.1:8080", url));
            assert!(
                e.contains("upstream.url") && e.contains(reason),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn cross_field_checks() {
        let text = MINIMAL.replace("[server]", "[server]\nmax_connections = 0");
        assert!(error_of(&text).contains("server.max_connections"));
        let text = MINIMAL.replace(
            "[server]",
            "[server]\nlisten = \"127.0.0.1:9090\"\nadmin_listen = \"127.0.0.1:9090\"",
        );
        assert!(error_of(&text).contains("two listeners"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credgate.toml");
        std::fs::write(&path, format!("{MINIMAL}\n[bogus]\n")).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }));
    }
}
