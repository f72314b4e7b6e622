//! `[[login]]` and `[leaked]`: the protected login endpoints, and what to do
//! with credentials known from breaches.

use std::path::PathBuf;

use serde::Deserialize;

use super::{defaults, Config, ConfigError, HeaderName, HumanDuration, MethodName, Size};
use crate::leaked::UsernameNormalization;
use crate::route::BodyFormat;
use crate::verdict::Action;

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

/// Login bodies are read whole into memory; this bounds what one request
/// can make the proxy hold.
const MAX_LOGIN_BODY: u64 = 1024 * 1024;

impl Config {
    pub(super) fn validate_logins(&self) -> Result<(), ConfigError> {
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
