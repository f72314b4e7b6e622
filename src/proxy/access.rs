//! What the access log needs from a request, taken before the pipeline
//! consumes it, and the request id forwarded as `X-Request-Id`.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, REFERER, USER_AGENT};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Body as _;

use crate::body::ProxyBody;
use crate::client_ip::ClientIp;
use crate::fingerprint::{HttpFingerprint, Ja4};
use crate::logging::access::{self, AccessLog, Entry};
use crate::risk::Level;
use crate::route::LoginRoute;
use crate::verdict::Verdict;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request line and headers the access log reports. Cheap clones:
/// `Uri` and header values share their bytes.
#[derive(Debug)]
pub(super) struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    host: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    bytes_in: Option<u64>,
}

/// What the pipeline found, for the log line.
#[derive(Debug)]
pub(super) struct Found<'a> {
    pub client: Option<ClientIp>,
    pub peer: SocketAddr,
    pub login: Option<&'a LoginRoute>,
    pub decision: &'static str,
    pub verdict: Option<Verdict>,
    pub risk: Option<Level>,
    pub ja4: Option<Ja4>,
    pub http: Option<&'a HttpFingerprint>,
    pub upstream: Option<Duration>,
    pub total: Duration,
    pub request_id: &'a str,
}

/// The request's id: a trusted peer's `X-Request-Id`, or a fresh one that
/// replaces whatever an untrusted client sent. Either way the shop gets it.
pub(super) fn request_id<B>(
    req: &mut Request<B>,
    log: &AccessLog,
    peer_trusted: bool,
) -> HeaderValue {
    let kept = peer_trusted
        .then(|| req.headers().get(X_REQUEST_ID))
        .flatten()
        .filter(|v| v.to_str().is_ok_and(|v| !v.is_empty()));
    if let Some(id) = kept {
        return id.clone();
    }
    let id = log.next_id();
    req.headers_mut().insert(X_REQUEST_ID, id.clone());
    id
}

// === impl Seen ===

impl Seen {
    pub(super) fn take<B>(req: &Request<B>) -> Self {
        let headers = req.headers();
        let get = |name| headers.get(name).cloned();
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            host: get(HOST),
            referer: get(REFERER),
            user_agent: get(USER_AGENT),
            bytes_in: content_length(headers),
        }
    }

    /// Writes the line, if the request is sampled (login attempts always are).
    pub(super) fn write(&self, log: &AccessLog, found: Found<'_>, response: &Response<ProxyBody>) {
        if !log.sampled(found.login.is_some()) {
            return;
        }
        let secret: &[&str] = match found.login {
            Some(route) => &[
                last_segment(&route.username_field),
                last_segment(&route.password_field),
            ],
            None => &[],
        };
        let path = access::redact_query(self.uri.path(), self.uri.query(), secret);
        let host = text(&self.host).or(self.uri.host()).unwrap_or("-");
        let bytes_out = response.body().size_hint().exact();
        log.write(&Entry {
            client: found.client.map_or(found.peer.ip(), |c| c.0),
            peer: found.peer,
            method: self.method.as_str(),
            host,
            path: &path,
            protocol: protocol(self.version),
            status: response.status().as_u16(),
            bytes_in: self.bytes_in,
            bytes_out: bytes_out.or_else(|| content_length(response.headers())),
            upstream: found.upstream,
            total: found.total,
            route: found.login.map_or("passthrough", |r| r.name.as_str()),
            decision: found.decision,
            verdict: found.verdict.map(Verdict::as_str),
            risk: found.risk.map(Level::as_str),
            ja4: found.ja4.as_ref().map(Ja4::as_str),
            http_fingerprint: found.http.map(HttpFingerprint::as_str),
            request_id: found.request_id,
            referer: text(&self.referer),
            user_agent: text(&self.user_agent),
        });
    }
}

/// A form field name as is; a JSON pointer's last segment, the name a
/// client could repeat in a query string.
fn last_segment(field: &str) -> &str {
    field.rsplit('/').next().unwrap_or(field)
}

fn text(value: &Option<HeaderValue>) -> Option<&str> {
    value.as_ref().and_then(|v| v.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP",
    }
}
