//! Responses credgate writes itself, instead of the shop's.
//!
//! Each is small, has a JSON body, and is never cached. The one function that
//! maps a [`RequestError`] to a status is an exhaustive `match`: a new kind of
//! error cannot ship without a decision about what the client sees.

use bytes::Bytes;
use std::time::{Duration, Instant};

use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode, Version};
use http_body_util::{Either, Full};

use crate::authority::AmbiguousHost;
use crate::body::ProxyBody;
use crate::credentials::BodyError;
use crate::credentials::CredentialsError;
use crate::metrics::{RefusalReason, RequestDecision};
use crate::risk::{self, Level};
use crate::route::RouteRefusal;
use crate::state::Refusal;
use crate::upstream::UpstreamError;
use crate::verdict::Verdict;

/// Why a request was not forwarded, or not answered by the shop.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    AmbiguousHost(#[from] AmbiguousHost),
    #[error(transparent)]
    Route(#[from] RouteRefusal),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("login refused: {}", .0.as_str())]
    Blocked(Verdict),
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// `[risk]` throttles logins of this level.
    #[error("login throttled: {} risk", .0.as_str())]
    RiskThrottled(Level),
    /// `[risk]` blocks logins of this level.
    #[error("login refused: {} risk", .0.as_str())]
    RiskBlocked(Level),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl RequestError {
    pub fn decision(&self) -> RequestDecision {
        match self {
            Self::AmbiguousHost(_) | Self::Route(_) | Self::Body(_) | Self::Credentials(_) => {
                RequestDecision::Reject
            }
            Self::Blocked(_)
            | Self::RiskBlocked(_)
            | Self::Refused(Refusal::Denied | Refusal::DeniedFingerprint | Refusal::Banned(_)) => {
                RequestDecision::Block
            }
            Self::RiskThrottled(_)
            | Self::Refused(Refusal::Throttled(_) | Refusal::Unavailable) => {
                RequestDecision::Throttle
            }
            Self::Upstream(_) => RequestDecision::UpstreamError,
        }
    }

    /// Why credgate answered itself; `None` when the shop failed.
    pub fn refusal(&self) -> Option<RefusalReason> {
        use RefusalReason as R;
        Some(match self {
            Self::AmbiguousHost(_) => R::AmbiguousHost,
            Self::Route(e) => match e {
                RouteRefusal::ControlInPath => R::PathControl,
                RouteRefusal::BodyNotAllowed { .. } => R::BodyNotAllowed,
                RouteRefusal::NotALoginMethod { .. } => R::LoginMethod,
                RouteRefusal::CredentialInQuery { .. } => R::CredentialInQuery,
                RouteRefusal::UpgradeOnLogin => R::LoginUpgrade,
            },
            Self::Body(e) => match e {
                BodyError::TooLarge { .. } => R::BodyTooLarge,
                BodyError::Timeout { .. } => R::BodyTimeout,
                BodyError::Read(_) => R::BodyUnreadable,
                BodyError::Encoded => R::BodyEncoded,
                BodyError::ContentType => R::ContentType,
                BodyError::RepeatedHeader { .. } => R::RepeatedHeader,
            },
            Self::Credentials(e) => match e {
                CredentialsError::Malformed { .. }
                | CredentialsError::NotUtf8 { .. }
                | CredentialsError::Missing { .. }
                | CredentialsError::NotAString { .. } => R::Unparsable,
                CredentialsError::Duplicate { .. } | CredentialsError::DuplicateJsonKey => {
                    R::DuplicateField
                }
                CredentialsError::CaseVariant { .. } => R::FieldVariant,
                CredentialsError::ControlCharacter { .. } => R::ControlCharacter,
                CredentialsError::PercentU | CredentialsError::Semicolon => R::FormSyntax,
            },
            Self::Blocked(_) => R::Leaked,
            Self::Refused(Refusal::Denied) => R::Denied,
            Self::Refused(Refusal::DeniedFingerprint) => R::DeniedFingerprint,
            Self::Refused(Refusal::Banned(_)) => R::Banned,
            Self::Refused(Refusal::Throttled(_)) => R::Throttled,
            Self::Refused(Refusal::Unavailable) => R::Unavailable,
            Self::RiskThrottled(_) | Self::RiskBlocked(_) => R::Risk,
            Self::Upstream(_) => return None,
        })
    }
}

/// The response for a request that was refused or failed, on a connection
/// of `version`.
pub fn for_error(error: &RequestError, version: Version, block: &BlockPage) -> Response<ProxyBody> {
    match error {
        RequestError::AmbiguousHost(_) => {
            let mut response = json(StatusCode::BAD_REQUEST, "ambiguous request target");
            close_connection(&mut response, version);
            response
        }
        RequestError::Route(e @ RouteRefusal::NotALoginMethod { allow, .. }) => {
            let mut response = json_owned(StatusCode::METHOD_NOT_ALLOWED, e.to_string());
            response.headers_mut().insert(ALLOW, allow.clone());
            response
        }
        RequestError::Route(
            e @ (RouteRefusal::ControlInPath
            | RouteRefusal::BodyNotAllowed { .. }
            | RouteRefusal::CredentialInQuery { .. }
            | RouteRefusal::UpgradeOnLogin),
        ) => json_owned(StatusCode::BAD_REQUEST, e.to_string()),
        RequestError::Body(e) => match e {
            BodyError::TooLarge { .. } => {
                json(StatusCode::PAYLOAD_TOO_LARGE, "login body too large")
            }
            BodyError::Timeout { .. } => json(StatusCode::REQUEST_TIMEOUT, "login body too slow"),
            BodyError::Read(_) => json(StatusCode::BAD_REQUEST, "login body unreadable"),
            BodyError::Encoded => json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "login bodies must not be compressed",
            ),
            BodyError::ContentType => json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported content type for this login",
            ),
            BodyError::RepeatedHeader { .. } => json_owned(StatusCode::BAD_REQUEST, e.to_string()),
        },
        RequestError::Credentials(e) => json_owned(StatusCode::BAD_REQUEST, e.to_string()),
        RequestError::Blocked(_) => block.response(),
        RequestError::Refused(Refusal::Denied | Refusal::DeniedFingerprint) => {
            json(StatusCode::FORBIDDEN, "access denied")
        }
        RequestError::Refused(Refusal::Banned(ban)) => {
            let mut response = json(
                StatusCode::FORBIDDEN,
                "too many suspicious login attempts from this address; try again later",
            );
            retry_after(
                &mut response,
                ban.until.saturating_duration_since(Instant::now()),
            );
            response
        }
        RequestError::Refused(Refusal::Throttled(t)) => {
            // Which limit (a bounded name): a client learns it by trying
            // anyway, and it tells a customer's support ticket (and the
            // campaign simulator) what refused them.
            let body = serde_json::json!({
                "error": "too many attempts; slow down",
                "limit": t.limit.as_str(),
            });
            let mut response = json_body(StatusCode::TOO_MANY_REQUESTS, &body);
            retry_after(&mut response, t.retry_after);
            response
        }
        RequestError::Refused(Refusal::Unavailable) => {
            let mut response = json(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attempts; slow down",
            );
            retry_after(&mut response, Duration::from_secs(1));
            response
        }
        RequestError::RiskThrottled(_) => {
            let mut response = json(
                StatusCode::TOO_MANY_REQUESTS,
                "this sign-in looks unusual; try again later",
            );
            retry_after(&mut response, risk::RETRY_AFTER);
            response
        }
        RequestError::RiskBlocked(_) => json(
            StatusCode::FORBIDDEN,
            "this sign-in looks unusual and was refused",
        ),
        RequestError::Upstream(UpstreamError::Connect(_) | UpstreamError::Protocol(_)) => {
            json(StatusCode::BAD_GATEWAY, "the shop could not be reached")
        }
        RequestError::Upstream(UpstreamError::Timeout { .. }) => json(
            StatusCode::GATEWAY_TIMEOUT,
            "the shop did not answer in time",
        ),
    }
}

/// `Retry-After` in whole seconds, rounded up: a client that waits exactly
/// this long is admitted.
fn retry_after(response: &mut Response<ProxyBody>, wait: Duration) {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
}

/// A small JSON error body: `{"error": "..."}`.
pub fn json(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    json_owned(status, message.to_owned())
}

fn json_owned(status: StatusCode, message: String) -> Response<ProxyBody> {
    json_body(status, &serde_json::json!({ "error": message }))
}

fn json_body(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let body = body.to_string();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Asks hyper to close an HTTP/1 connection after this response: after an
/// ambiguous request, the rest of the byte stream cannot be trusted. HTTP/2
/// streams are independent, and `Connection` is not allowed there.
fn close_connection(response: &mut Response<ProxyBody>, version: Version) {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The 403 for a blocked login: the operator's page (`block_body_file`), or
/// a short built-in one telling a customer what to do.
#[derive(Debug, Clone)]
pub struct BlockPage {
    body: Bytes,
    content_type: HeaderValue,
}

const BLOCK_HTML: &str = "<!doctype html>\n<title>Password reset needed</title>\n\
<h1>Please reset your password</h1>\n\
<p>This password is known from a data breach elsewhere, so we did not accept it. \
Use \"Forgot password\" to choose a new one.</p>\n";

impl Default for BlockPage {
    fn default() -> Self {
        Self {
            body: Bytes::from_static(BLOCK_HTML.as_bytes()),
            content_type: HeaderValue::from_static("text/html; charset=utf-8"),
        }
    }
}

impl BlockPage {
    /// Reads the operator's page; the content type follows the extension.
    pub fn load(path: &std::path::Path) -> std::io::Result<Self> {
        let body = Bytes::from(std::fs::read(path)?);
        let content_type = match path.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => "text/html; charset=utf-8",
            Some("json") => "application/json",
            _ => "text/plain; charset=utf-8",
        };
        Ok(Self {
            body,
            content_type: HeaderValue::from_static(content_type),
        })
    }

    fn response(&self) -> Response<ProxyBody> {
        let mut response = Response::new(Either::Right(Full::new(self.body.clone())));
        *response.status_mut() = StatusCode::FORBIDDEN;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, self.content_type.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
