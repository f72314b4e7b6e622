//! The admin listener: `/metrics`, `/healthz`, `/readyz`, and the token
//! protected `/admin/*` API.
//!
//! It is plain HTTP on a separate address (loopback by default) so that
//! scrapes and probes never compete with shop traffic for connection slots,
//! and so that it can be firewalled apart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use ipnet::IpNet;
use prometheus::{Encoder, Registry, TextEncoder};
use std::net::IpAddr;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::attack::{AttackMode, Mode};
use crate::body::ProxyBody;
use crate::config::OnBackendError;
use crate::fingerprint::Fingerprints;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::reputation::BanReason;
use crate::state::origin::Note;
use crate::state::State;
use crate::upstream::Upstream;

/// Admin request bodies are tiny JSON objects.
const MAX_ADMIN_BODY: usize = 4096;

/// `GET /admin/fingerprints` lists this many unless asked for up to the
/// maximum.
const DEFAULT_FINGERPRINTS: usize = 50;
const MAX_FINGERPRINTS_LISTED: usize = 1000;

/// A token shorter than this is a placeholder, not a secret.
const MIN_TOKEN_LEN: usize = 16;

/// The longest ban an operator may impose: long enough for any real use,
/// and far from the end of `Instant`'s range, where adding it would panic.
const MAX_BAN: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The longest `by` or `reason` of an operator's ban, in characters.
const MAX_NOTE: usize = 200;

/// Warns when the token file is readable by group or others: anyone who can
/// read it can lift every ban.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the admin token file is readable by group or others; chmod 600 it"
        );
    }
}

/// The bearer token of `/admin/*`: never printed, compared in constant time.
pub struct AdminToken(Zeroizing<Vec<u8>>);

/// Why the admin token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("{}: cannot read the token", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the token must be at least {MIN_TOKEN_LEN} characters", path.display())]
    TooShort { path: PathBuf },
}

impl AdminToken {
    /// Reads the token; surrounding whitespace (a trailing newline) is not
    /// part of it.
    pub fn load(path: &Path) -> Result<Self, AdminTokenError> {
        let raw = Zeroizing::new(std::fs::read(path).map_err(|source| AdminTokenError::Read {
            path: path.to_owned(),
            source,
        })?);
        let token = raw.trim_ascii();
        if token.len() < MIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort {
                path: path.to_owned(),
            });
        }
        warn_if_shared(path);
        Ok(Self(Zeroizing::new(token.to_vec())))
    }

    /// Returns true if and only if `authorization` is `Bearer <this token>`.
    fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let presented = authorization
            .map(|v| v.as_bytes())
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        presented.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// What the admin listener serves from.
#[derive(Debug)]
pub struct AdminParts {
    pub registry: Registry,
    pub metrics: Metrics,
    pub upstream: Upstream,
    pub state: State,
    pub attack: AttackMode,
    pub fingerprints: Fingerprints,
    /// `None`: the `/admin/*` API is off.
    pub token: Option<AdminToken>,
    pub reloader: Reloader,
}

/// The admin endpoints' shared handles. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct Admin {
    inner: Arc<AdminParts>,
}

impl Admin {
    pub fn new(parts: AdminParts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let path = req.uri().path();
        if path.starts_with("/admin/") {
            return self.api(req).await;
        }
        if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match path {
            "/metrics" => self.metrics(),
            "/readyz" => self.ready().await,
            _ => text(StatusCode::OK, "ok\n"),
        }
    }

    /// `/admin/*`: only with the bearer token.
    async fn api(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let Some(token) = &self.inner.token else {
            return json(
                StatusCode::FORBIDDEN,
                &serde_json::json!({"error": "the admin API is off: set server.admin_token_file"}),
            );
        };
        if !token.accepts(req.headers().get(AUTHORIZATION)) {
            let mut response = json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"error": "a valid bearer token is required"}),
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let path = req.uri().path().to_owned();
        if let Some(target) = path.strip_prefix("/admin/bans/") {
            if !matches!(*req.method(), Method::DELETE | Method::GET) {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "use GET to look a target up, DELETE to lift its ban",
                );
            }
            let target = percent_encoding::percent_decode_str(target).decode_utf8_lossy();
            let Some(net) = parse_target(&target) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "target must be an IP address or a CIDR",
                );
            };
            return match *req.method() {
                Method::DELETE => self.unban(net).await,
                _ => self.lookup(net).await,
            };
        }
        match (req.method(), path.as_str()) {
            (&Method::GET, "/admin/bans") => json(StatusCode::OK, &self.inner.state.bans().await),
            (&Method::POST, "/admin/bans") => self.ban(req.into_body()).await,
            (&Method::GET, "/admin/attack-mode") => {
                json(StatusCode::OK, &self.inner.attack.status())
            }
            (&Method::POST, "/admin/attack-mode") => self.force_attack(req.into_body()).await,
            (&Method::GET, "/admin/fingerprints") => self.fingerprints(req.uri().query()),
            (&Method::GET, "/admin/filters") => {
                json(StatusCode::OK, &self.inner.reloader.filters().status())
            }
            (&Method::POST, "/admin/reload") => {
                let report = self.inner.reloader.reload().await;
                let status = match report.all_ok() {
                    true => StatusCode::OK,
                    false => StatusCode::UNPROCESSABLE_ENTITY,
                };
                json(status, &report)
            }
            _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }

    /// `POST /admin/bans` with `{"target": "203.0.113.7" or a CIDR,
    /// "duration": "1h"}`, and optionally who bans (`by`) and why
    /// (`reason`).
    async fn ban(&self, body: Incoming) -> Response<ProxyBody> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct NewBan {
            target: String,
            duration: String,
            #[serde(default)]
            by: Option<String>,
            #[serde(default)]
            reason: Option<String>,
        }
        let Ok(body) = Limited::new(body, MAX_ADMIN_BODY).collect().await else {
            return error(
                StatusCode::BAD_REQUEST,
                "the body is unreadable or too large",
            );
        };
        let request: NewBan = match serde_json::from_slice(&body.to_bytes()) {
            Ok(request) => request,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    r#"expected {"target": "<ip or cidr>", "duration": "<like 1h>"}"#,
                )
            }
        };
        let Some(target) = parse_target(&request.target) else {
            return error(
                StatusCode::BAD_REQUEST,
                "target must be an IP address or a CIDR",
            );
        };
        let duration = match humantime::parse_duration(&request.duration) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "duration must be like \"30m\" or \"24h\"",
                )
            }
        };
        if duration > MAX_BAN || Instant::now().checked_add(duration).is_none() {
            return error(StatusCode::BAD_REQUEST, "duration must be at most 1 year");
        }
        let (Some(by), Some(reason)) = (words(request.by), words(request.reason)) else {
            return error(
                StatusCode::BAD_REQUEST,
                "by and reason must be printable text of at most 200 characters",
            );
        };
        let note = Note { by, reason };
        self.inner.state.ban(target, duration, &note).await;
        self.inner.metrics.record_ban(BanReason::Manual);
        let created =
            serde_json::json!({"target": target, "expires_in_seconds": duration.as_secs()});
        json(StatusCode::CREATED, &created)
    }

    /// `POST /admin/attack-mode` with `{"route": "<name>", "mode": "on" |
    /// "off" | "auto"}`; without `route`, every login route. Answers with
    /// every route's status, as `GET` does.
    async fn force_attack(&self, body: Incoming) -> Response<ProxyBody> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Force {
            #[serde(default)]
            route: Option<String>,
            mode: Mode,
        }
        let Ok(body) = Limited::new(body, MAX_ADMIN_BODY).collect().await else {
            return error(
                StatusCode::BAD_REQUEST,
                "the body is unreadable or too large",
            );
        };
        let Ok(request) = serde_json::from_slice::<Force>(&body.to_bytes()) else {
            return error(
                StatusCode::BAD_REQUEST,
                r#"expected {"route": "<login route name>", "mode": "on" | "off" | "auto"}"#,
            );
        };
        let attack = &self.inner.attack;
        if let Err(e) = attack.force(request.route.as_deref(), request.mode) {
            return error(StatusCode::NOT_FOUND, &e.to_string());
        }
        let names = attack.routes();
        let routes: Vec<&str> = match &request.route {
            Some(route) => vec![route.as_str()],
            None => names.iter().map(String::as_str).collect(),
        };
        self.inner.state.force_attack(&routes, request.mode).await;
        self.inner.metrics.record_attack_mode(attack.each_on());
        json(StatusCode::OK, &attack.status())
    }

    /// `GET /admin/fingerprints[?limit=N]`: the busiest fingerprints over
    /// the `[suspicion]` window, by login attempts.
    fn fingerprints(&self, query: Option<&str>) -> Response<ProxyBody> {
        let limit = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "limit")
            .map(|(_, v)| v.parse::<usize>());
        let limit = match limit {
            None => DEFAULT_FINGERPRINTS,
            Some(Ok(n)) if (1..=MAX_FINGERPRINTS_LISTED).contains(&n) => n,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "limit must be a number from 1 to 1000",
                )
            }
        };
        let top = self
            .inner
            .fingerprints
            .top(limit, std::time::Instant::now());
        json(
            StatusCode::OK,
            &serde_json::json!({
                "tracked": self.inner.fingerprints.len(),
                "fingerprints": top,
            }),
        )
    }

    /// `DELETE /admin/bans/{ip or cidr}`.
    async fn unban(&self, net: IpNet) -> Response<ProxyBody> {
        let lifted = self.inner.state.unban(net).await;
        // An address inside a banned network: say which ban to lift (or,
        // once its own is lifted, which ban still refuses it).
        let covering = self.inner.state.covering(net).await;
        if lifted {
            let mut answer = serde_json::json!({"unbanned": net});
            if !covering.is_empty() {
                answer["still_covered_by"] = serde_json::json!(covering);
            }
            return json(StatusCode::OK, &answer);
        }
        match covering.is_empty() {
            true => error(StatusCode::NOT_FOUND, "no ban on that target"),
            false => json(
                StatusCode::CONFLICT,
                &serde_json::json!({
                    "error": "no ban on exactly that target; lift the covering ban instead",
                    "covered_by": covering,
                }),
            ),
        }
    }

    /// `GET /admin/bans/{ip or cidr}`: the bans in force on it, or on a
    /// network containing it, narrowest first (an empty list: none).
    async fn lookup(&self, net: IpNet) -> Response<ProxyBody> {
        let bans = self.inner.state.covering(net).await;
        json(
            StatusCode::OK,
            &serde_json::json!({"target": net, "bans": bans}),
        )
    }

    fn metrics(&self) -> Response<ProxyBody> {
        let encoder = TextEncoder::new();
        let mut body = Vec::with_capacity(16 * 1024);
        if let Err(e) = encoder.encode(&self.inner.registry.gather(), &mut body) {
            tracing::error!(error = %e, "cannot encode metrics");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
        }
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
        if let Ok(v) = HeaderValue::from_str(encoder.format_type()) {
            response.headers_mut().insert(CONTENT_TYPE, v);
        }
        response
    }

    /// Ready when the shop accepts connections: a replica that cannot reach
    /// it should be taken out of the load balancer, not sent traffic to 502.
    /// Ready when the upstream answers. A degraded state backend is said
    /// but stays 200: every replica shares the one Redis, so failing all
    /// their probes would turn weaker limits into an outage.
    async fn ready(&self) -> Response<ProxyBody> {
        if !self.inner.upstream.reachable().await {
            return text(StatusCode::SERVICE_UNAVAILABLE, "upstream unreachable\n");
        }
        let state = &self.inner.state;
        match (state.degraded(), state.on_backend_error()) {
            (false, _) => text(StatusCode::OK, "ready\n"),
            (true, OnBackendError::Local) => text(
                StatusCode::OK,
                "ready; state backend degraded: limits and bans are per replica\n",
            ),
            (true, OnBackendError::Allow) => text(
                StatusCode::OK,
                "ready; state backend degraded: logins are not limited\n",
            ),
            (true, OnBackendError::Deny) => text(
                StatusCode::OK,
                "ready; state backend degraded: logins are refused\n",
            ),
        }
    }
}

/// An address (a one-address network) or a network.
fn parse_target(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .ok()
        .map(|net| net.trunc())
}

/// An operator's `by` or `reason`: absent, or printable text within
/// [`MAX_NOTE`] characters (it goes into log lines). `None`: refused.
fn words(text: Option<String>) -> Option<Option<String>> {
    let Some(text) = text else {
        return Some(None);
    };
    let text = text.trim();
    let printable = !text.chars().any(char::is_control);
    (printable && text.chars().count() <= MAX_NOTE)
        .then(|| Some(text.to_owned()).filter(|t| !t.is_empty()))
}

fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json(status, &serde_json::json!({ "error": message }))
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<ProxyBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_checked_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef-secret\n").unwrap();
        let token = AdminToken::load(&path).unwrap();
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(token.accepts(Some(&header("Bearer 0123456789abcdef-secret"))));
        assert!(!token.accepts(Some(&header("Bearer 0123456789abcdef-secreT"))));
        assert!(!token.accepts(Some(&header("Bearer 0123456789abcdef"))));
        assert!(!token.accepts(Some(&header("0123456789abcdef-secret"))));
        assert!(!token.accepts(None));
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");

        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            AdminToken::load(&path),
            Err(AdminTokenError::TooShort { .. })
        ));
    }
}
