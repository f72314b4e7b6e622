//! The shop behind the proxy: a pooled client and the forwarding rules.
//!
//! Bodies are never buffered here: the client's body streams to the shop and
//! the shop's body streams back. Requests are not retried (a login must reach
//! the shop at most once), and hyper never returns a connection to the pool
//! after a framing error, so one confused exchange cannot poison the next.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

use crate::body::ProxyBody;
use crate::config::{self, UpstreamUrl};

/// Why the shop did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to the upstream")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream did not answer within {after:?}")]
    Timeout { after: Duration },
    #[error("the upstream exchange failed")]
    Protocol(#[source] hyper_util::client::legacy::Error),
}

/// Why the shop could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 3] = [Self::Connect, Self::Timeout, Self::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

impl UpstreamError {
    pub fn kind(&self) -> UpstreamErrorKind {
        match self {
            Self::Connect(_) => UpstreamErrorKind::Connect,
            Self::Timeout { .. } => UpstreamErrorKind::Timeout,
            Self::Protocol(_) => UpstreamErrorKind::Protocol,
        }
    }
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error("{}: cannot read CA certificates", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no usable CA certificate in the file", path.display())]
    NoCa { path: std::path::PathBuf },
    #[error("no system CA certificates could be loaded for the https upstream")]
    NoSystemRoots,
    #[error("cannot build the upstream TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// How the request reached us, for the `X-Forwarded-*` and `Forwarded` headers.
#[derive(Debug, Clone, Copy)]
pub struct Hop {
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy, whose forwarded headers we extend
    /// rather than replace.
    pub peer_trusted: bool,
    /// `https` on the TLS listener, `http` on the cleartext one.
    pub scheme: &'static str,
}

/// A cheap handle to the pooled upstream client.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    base: UpstreamUrl,
    request_timeout: Duration,
    connect_timeout: Duration,
    /// `server.strip_client_headers`: removed from untrusted peers' requests.
    strip: Arc<[HeaderName]>,
}

// === impl Upstream ===

impl Upstream {
    pub fn new(
        config: &config::Upstream,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, UpstreamSetupError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout.0));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(UpstreamSetupError::Tls)?
            .with_root_certificates(root_store(config)?)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout.0)
            .pool_max_idle_per_host(config.pool_max_idle)
            .retry_canceled_requests(false)
            .set_host(false)
            .build(connector);
        Ok(Self {
            client,
            base: config.url.clone(),
            request_timeout: config.request_timeout.0,
            connect_timeout: config.connect_timeout.0,
            strip: Arc::from([]),
        })
    }

    /// Removes `names` from the requests of untrusted peers: the
    /// client-address headers a shop might believe.
    pub fn strip_client_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.strip = names.into_iter().collect();
        self
    }

    /// Sends `req` to the shop and returns its response head, the body still
    /// streaming. `host` is the client's `Host`, which the shop keeps seeing.
    pub async fn forward(
        &self,
        mut req: Request<ProxyBody>,
        host: HeaderValue,
        hop: Hop,
    ) -> Result<(Response<Incoming>, Duration), UpstreamError> {
        *req.uri_mut() = self.target(std::mem::take(req.uri_mut()));
        // An HTTP/1.1 upgrade (WebSocket) is the one hop-by-hop request the
        // shop must see; HTTP/2 has no `Upgrade`.
        let upgrade = (req.version() == Version::HTTP_11)
            .then(|| upgrade_of(req.headers()))
            .flatten();
        if req.version() == Version::HTTP_2 {
            join_cookies(req.headers_mut());
        }
        *req.version_mut() = Version::HTTP_11;
        if !hop.peer_trusted {
            strip_client_headers(req.headers_mut(), &self.strip);
        }
        prepare_headers(req.headers_mut(), host, hop);
        if let Some(protocol) = upgrade {
            keep_upgrade(req.headers_mut(), protocol);
        }
        let started = Instant::now();
        let response = tokio::time::timeout(self.request_timeout, self.client.request(req))
            .await
            .map_err(|_| UpstreamError::Timeout {
                after: self.request_timeout,
            })?
            .map_err(|e| match e.is_connect() {
                true => UpstreamError::Connect(e),
                false => UpstreamError::Protocol(e),
            })?;
        let elapsed = started.elapsed();
        let (mut parts, body) = response.into_parts();
        let switched = (parts.status == http::StatusCode::SWITCHING_PROTOCOLS)
            .then(|| upgrade_of(&parts.headers))
            .flatten();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = switched {
            keep_upgrade(&mut parts.headers, protocol);
        }
        Ok((Response::from_parts(parts, body), elapsed))
    }

    /// Returns true if and only if a TCP connection to the shop opens within
    /// the connect timeout: the readiness probe.
    pub async fn reachable(&self) -> bool {
        let host = self.base.authority.host().trim_matches(['[', ']']);
        let port = self.base.authority.port_u16().unwrap_or(
            match self.base.scheme == http::uri::Scheme::HTTPS {
                true => 443,
                false => 80,
            },
        );
        let connect = tokio::net::TcpStream::connect((host, port));
        matches!(
            tokio::time::timeout(self.connect_timeout, connect).await,
            Ok(Ok(_))
        )
    }

    fn target(&self, uri: Uri) -> Uri {
        let mut parts = uri.into_parts();
        parts.scheme = Some(self.base.scheme.clone());
        parts.authority = Some(self.base.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        Uri::from_parts(parts).expect("scheme, authority and path were each valid already")
    }
}

fn root_store(config: &config::Upstream) -> Result<RootCertStore, UpstreamSetupError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = &config.ca_file {
        let certs = read_ca_file(path)?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(UpstreamSetupError::NoCa { path: path.clone() });
        }
    } else if config.url.scheme == http::uri::Scheme::HTTPS {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(UpstreamSetupError::NoSystemRoots);
        }
    }
    Ok(roots)
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamSetupError> {
    let err = |source| UpstreamSetupError::CaFile {
        path: path.to_owned(),
        source,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
/// Forwarding them would let a client steer our connection to the shop.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including any that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The protocol a message asks to switch to: its `Upgrade` value, when
/// `Connection` names `upgrade`.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts back the two headers of an upgrade, and no other hop-by-hop one.
fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// HTTP/2 may split `Cookie` into one field per cookie; an HTTP/1.1 shop
/// expects one field, so they are joined with `; ` (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let mut joined = Vec::with_capacity(256);
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Removes the client-address headers of an untrusted peer: those in
/// `names`, and any header that a CGI-style stack (PHP, Rack, WSGI) would
/// read as one of them or as a forwarded header we set, by reading `_` as
/// `-` (`X_Forwarded_For`, `X_Real_IP`).
fn strip_client_headers(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        headers.remove(name);
    }
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().contains('_'))
        .filter(|name| {
            let dashed = name.as_str().replace('_', "-");
            names
                .iter()
                .chain([&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &header::FORWARDED])
                .any(|n| n.as_str() == dashed)
        })
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// Makes the headers fit for the shop: hop-by-hop ones removed, `Host` set to
/// what the client asked for, forwarded headers extended (trusted peer) or
/// replaced (anyone else, whose claims we never pass on).
fn prepare_headers(headers: &mut HeaderMap, host: HeaderValue, hop: Hop) {
    use std::io::Write as _;

    strip_hop_by_hop(headers);
    let peer = hop.peer.to_canonical();
    let mut xff = forwarded_prefix(headers, &X_FORWARDED_FOR, hop.peer_trusted);
    let _ = write!(xff, "{peer}");
    set(headers, X_FORWARDED_FOR, xff);

    let mut forwarded = forwarded_prefix(headers, &header::FORWARDED, hop.peer_trusted);
    let _ = match peer {
        IpAddr::V4(v4) => write!(forwarded, "for={v4}"),
        IpAddr::V6(v6) => write!(forwarded, "for=\"[{v6}]\""),
    };
    // A valid Host holds no quote or backslash (it parsed as an authority).
    let _ = write!(
        forwarded,
        ";host=\"{}\";proto={}",
        host.to_str().unwrap_or(""),
        hop.scheme
    );
    set(headers, header::FORWARDED, forwarded);

    if !(hop.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.scheme));
    }
    headers.insert(header::HOST, host);
}

/// The existing chain of a forwarded header, followed by `, `, when it is to
/// be extended; empty when it is to be replaced. Bytes, not text: an entry
/// with a non-ASCII byte is passed on as it came, not dropped with its
/// neighbours.
fn forwarded_prefix(headers: &HeaderMap, name: &HeaderName, extend: bool) -> Vec<u8> {
    let mut value = Vec::with_capacity(64);
    if extend {
        for previous in headers.get_all(name) {
            value.extend_from_slice(previous.as_bytes());
            value.extend_from_slice(b", ");
        }
    }
    value
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: Vec<u8>) {
    // Every part is a header value we just read, or text built from an
    // address, a validated host and a fixed scheme.
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(peer: &str, trusted: bool) -> Hop {
        Hop {
            peer: peer.parse().unwrap(),
            peer_trusted: trusted,
            scheme: "https",
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn untrusted_peer_forwarded_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        prepare_headers(
            &mut h,
            HeaderValue::from_static("shop.test"),
            hop("203.0.113.9", false),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;host=\"shop.test\";proto=https"
        );
        assert_eq!(h["host"], "shop.test");
    }

    #[test]
    fn h2_cookies_are_joined_and_client_address_headers_stripped() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("x-kept", "1")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut h = map(&[
            ("x-real-ip", "6.6.6.6"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("x_kept", "1"),
        ]);
        let names = [HeaderName::from_static("x-real-ip")];
        strip_client_headers(&mut h, &names);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x_kept"], "1");
    }

    #[test]
    fn non_ascii_chains_are_extended_byte_for_byte() {
        let mut h = HeaderMap::new();
        let chain = HeaderValue::from_bytes(b"\xe9vil, 198.51.100.7").unwrap();
        h.insert("x-forwarded-for", chain);
        prepare_headers(
            &mut h,
            HeaderValue::from_static("shop.test"),
            hop("10.0.0.1", true),
        );
        assert_eq!(
            h["x-forwarded-for"].as_bytes(),
            b"\xe9vil, 198.51.100.7, 10.0.0.1"
        );
    }

    #[test]
    fn trusted_peer_forwarded_headers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        prepare_headers(
            &mut h,
            HeaderValue::from_static("shop.test"),
            hop("::1", true),
        );
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, ::1");
        assert_eq!(
            h["forwarded"],
            "for=198.51.100.7, for=\"[::1]\";host=\"shop.test\";proto=https"
        );
    }
}
