//! `[[login]]` and `[leaked]`: the protected login endpoints, and what to do
//! with credentials known from breaches.

use std::path::PathBuf;

use serde::Deserialize;

use super::preset::Preset;
use super::{defaults, Config, ConfigError, HeaderName, HumanDuration, MethodName, Size};
use crate::username::{Normalizer, Region, UsernameNormalization};

/// `[[login]]`: one protected login endpoint, its `preset` (if any) applied.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "LoginTable")]
pub struct Login {
    /// The platform whose values filled the keys the table leaves out.
    pub preset: Option<Preset>,
    /// The `route` label of metrics; derived from `path` when absent.
    pub name: Option<String>,
    pub path: String,
    pub methods: Vec<MethodName>,
    pub format: BodyFormat,
    pub username_field: String,
    pub password_field: String,
    pub max_body: Size,
    /// Whether `/Login` is a different path from `/login`. Off by default:
    /// many shops' routers ignore case, and a miss is a bypass.
    pub case_sensitive: bool,
    /// Whether `/login.json`, `/login.xml` (`path` followed by `.` and an
    /// extension) are this route too, as Rails' `(.:format)` and Spring's
    /// suffix matching route them. On by default.
    pub match_suffix: bool,
    /// Whether every path below `path` is this route too: Magento reads
    /// `/loginPost/referer/...` as parameters of `/loginPost`. Off by default.
    pub match_subpaths: bool,
    /// How the shop says "wrong password": these statuses...
    pub failure_status: Vec<u16>,
    /// ... or a redirect whose `Location` (or its path, when absolute)
    /// starts with this ...
    pub failure_redirect: Option<String>,
    /// ... or this header in the response.
    pub failure_header: Option<HeaderName>,
    /// Only a form body carrying this field is a login attempt; the others
    /// (the platform's other forms on the same path) pass unchecked.
    pub attempt_field: Option<String>,
    /// Names (JSON pointers) the shop reads the username from instead of
    /// `username_field`: a body carrying one is refused as ambiguous.
    pub username_aliases: Vec<String>,
}

/// A `[[login]]` table as written: every key the operator may leave to the
/// preset or to the default is optional here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginTable {
    preset: Option<Preset>,
    name: Option<String>,
    path: Option<String>,
    methods: Option<Vec<MethodName>>,
    format: Option<BodyFormat>,
    username_field: Option<String>,
    password_field: Option<String>,
    max_body: Option<Size>,
    #[serde(default)]
    case_sensitive: bool,
    #[serde(default = "defaults::match_suffix")]
    match_suffix: bool,
    match_subpaths: Option<bool>,
    failure_status: Option<Vec<u16>>,
    failure_redirect: Option<String>,
    failure_header: Option<HeaderName>,
    attempt_field: Option<String>,
    username_aliases: Option<Vec<String>>,
}

impl TryFrom<LoginTable> for Login {
    type Error = String;

    /// Explicit keys first, then the preset's, then the defaults.
    fn try_from(t: LoginTable) -> Result<Self, String> {
        let preset = t.preset.map(Preset::login);
        let path = match (t.path, t.preset) {
            (Some(path), _) => path,
            (None, Some(p)) => preset
                .and_then(|l| l.path)
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!(
                        "missing field `path`: the {} preset has no fixed path \
                         (Keycloak's names the realm: /realms/NAME/login-actions/authenticate)",
                        p.as_str()
                    )
                })?,
            (None, None) => return Err("missing field `path`".into()),
        };
        let format = match preset {
            Some(l) if l.json => BodyFormat::Json,
            Some(_) => BodyFormat::Form,
            None => BodyFormat::default(),
        };
        let field = |set: Option<String>, from_preset: Option<&str>, default: fn() -> String| {
            set.or(from_preset.map(str::to_owned))
                .unwrap_or_else(default)
        };
        Ok(Self {
            preset: t.preset,
            name: t.name,
            path,
            methods: t.methods.unwrap_or_else(defaults::login_methods),
            format: t.format.unwrap_or(format),
            username_field: field(
                t.username_field,
                preset.map(|l| l.username_field),
                defaults::username_field,
            ),
            password_field: field(
                t.password_field,
                preset.map(|l| l.password_field),
                defaults::password_field,
            ),
            max_body: t.max_body.unwrap_or_else(defaults::max_body),
            case_sensitive: t.case_sensitive,
            match_suffix: t.match_suffix,
            match_subpaths: t
                .match_subpaths
                .unwrap_or(preset.is_some_and(|l| l.match_subpaths)),
            failure_status: t
                .failure_status
                .or(preset.map(|l| l.failure_status.to_vec()))
                .unwrap_or_else(defaults::failure_status),
            failure_redirect: t
                .failure_redirect
                .or(preset.and_then(|l| l.failure_redirect).map(str::to_owned)),
            failure_header: t.failure_header,
            attempt_field: t
                .attempt_field
                .or(preset.and_then(|l| l.attempt_field).map(str::to_owned)),
            username_aliases: t.username_aliases.unwrap_or_else(|| {
                let aliases = preset.map_or(&[][..], |l| l.username_aliases);
                aliases.iter().map(|a| (*a).to_owned()).collect()
            }),
        })
    }
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
    /// Must match the rule the pairs filter was built with. Unset, it is
    /// `email`, and a pairs filter built with another rule is refused with a
    /// message naming this key (see [`Leaked::normalizer`]).
    #[serde(default)]
    pub username_normalization: Option<UsernameNormalization>,
    /// The region whose national phone numbers `auto` and `phone` read
    /// (`CN`: `13800138000` is `+8613800138000`); must match the filter's.
    #[serde(default)]
    pub default_region: Option<Region>,
    /// How often the filter files are checked for replacement; `0s` turns
    /// the watch off (SIGHUP and `POST /admin/reload` still reload).
    #[serde(default = "defaults::watch_interval")]
    pub watch_interval: HumanDuration,
    /// A running proxy refuses to swap in a filter of 0 items (a build gone
    /// wrong would silently turn the check off) unless this is true.
    #[serde(default)]
    pub allow_empty_reload: bool,
    /// A filter built longer ago than this is stale: exported as
    /// `credgate_filter_max_age_seconds` for the `CredgateFilterStale` alert.
    #[serde(default = "defaults::max_filter_age")]
    pub max_filter_age: HumanDuration,
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

/// How a login body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    Form,
    Json,
    /// By `Content-Type`: form or JSON.
    #[default]
    Auto,
}

/// The operator's choice for a kind of leak (`on_leaked_pair`,
/// `on_leaked_password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// 403; the shop never sees the attempt.
    Block,
    /// Forward with the annotation header, so the shop can force a reset.
    Annotate,
    /// Forward unchanged; only metrics and logs say what would have happened.
    Shadow,
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
            let aliases = login
                .username_aliases
                .iter()
                .map(|a| ("username_aliases", a));
            for (field, value) in [
                ("username_field", &login.username_field),
                ("password_field", &login.password_field),
            ]
            .into_iter()
            .chain(aliases)
            {
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
            if let Some(field) = &login.attempt_field {
                if field.is_empty() {
                    return Err(invalid("attempt_field", "must not be empty".into()));
                }
                if login.format == BodyFormat::Json {
                    return Err(invalid(
                        "attempt_field",
                        "applies to form bodies; this route is format = \"json\"".into(),
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
        }
        Ok(())
    }
}

impl Leaked {
    /// The username rule of the limits and the leaked checks: the configured
    /// one, `email` when the key is unset.
    pub fn normalizer(&self) -> Normalizer {
        let kind = self.username_normalization.unwrap_or_default();
        Normalizer::new(kind, self.default_region)
    }
}

impl Default for Leaked {
    fn default() -> Self {
        Self {
            pairs_filter: None,
            passwords_filter: None,
            username_normalization: None,
            default_region: None,
            watch_interval: defaults::watch_interval(),
            allow_empty_reload: false,
            max_filter_age: defaults::max_filter_age(),
            on_leaked_pair: defaults::on_leaked_pair(),
            on_leaked_password: defaults::on_leaked_password(),
            annotate_header: defaults::annotate_header(),
            block_body_file: None,
            on_unparsed: OnUnparsed::default(),
        }
    }
}
