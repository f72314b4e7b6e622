//! The shop behind the proxy: a pooled client and the forwarding rules.
//!
//! Bodies are never buffered here: the client's body streams to the shop and
//! the shop's body streams back. Requests are not retried (a login must reach
//! the shop at most once), and hyper never returns a connection to the pool
//! after a framing error, so one confused exchange cannot poison the next.

mod headers;
mod pool;

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::uri::{self, PathAndQuery, Uri};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

use crate::body::ProxyBody;
use crate::config::{self, UpstreamUrl};
use headers::{join_cookies, keep_upgrade, prepare_headers, strip_client_headers, ClientHeaders};
pub use headers::{strip_hop_by_hop, upgrade_of};
pub use pool::ConnectError;
use pool::Pool;

/// Why the shop did not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to the upstream")]
    Connect(#[source] ConnectError),
    #[error("the upstream did not answer within {after:?}")]
    Timeout { after: Duration },
    #[error("the upstream exchange failed")]
    Protocol(#[source] hyper::Error),
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
    pool: Arc<Pool>,
    base: UpstreamUrl,
    request_timeout: Duration,
    connect_timeout: Duration,
    /// `server.strip_client_headers`: removed from untrusted peers' requests.
    strip: Arc<ClientHeaders>,
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
        let origin = Uri::from_parts({
            let mut parts = uri::Parts::default();
            parts.scheme = Some(config.url.scheme.clone());
            parts.authority = Some(config.url.authority.clone());
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
            parts
        })
        .expect("a validated scheme and authority make a URI");
        let pool = Pool::new(
            connector,
            origin,
            config.pool_max_idle,
            config.pool_idle_timeout.0,
        );
        Ok(Self {
            pool: Arc::new(pool),
            base: config.url.clone(),
            request_timeout: config.request_timeout.0,
            connect_timeout: config.connect_timeout.0,
            strip: Arc::default(),
        })
    }

    /// Removes `names` from the requests of untrusted peers: the
    /// client-address headers a shop might believe.
    pub fn strip_client_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.strip = Arc::new(names.into_iter().collect());
        self
    }

    /// Sends `req` to the shop and returns its response head, the body still
    /// streaming. `host` is the client's `Host`, which the shop keeps seeing.
    ///
    /// Not an `async fn`: the headers are rewritten before the future
    /// exists, and an `async fn` would keep its arguments twice in the
    /// future (once as passed, once moved into its body), which every
    /// enclosing future of the pipeline then carries and copies.
    pub fn forward(
        &self,
        mut req: Request<ProxyBody>,
        host: HeaderValue,
        hop: Hop,
    ) -> impl Future<Output = Result<(Response<Incoming>, Duration), UpstreamError>> + Send + '_
    {
        let connect = req.method() == Method::CONNECT;
        *req.uri_mut() = self.target(connect, std::mem::take(req.uri_mut()));
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
        async move {
            let started = Instant::now();
            let response = tokio::time::timeout(self.request_timeout, self.pool.send(req, started))
                .await
                .map_err(|_| UpstreamError::Timeout {
                    after: self.request_timeout,
                })??;
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

    /// Closes the shop connections idle past `upstream.pool_idle_timeout`.
    pub fn expire_idle(&self, now: Instant) {
        self.pool.expire(now);
    }

    /// The request target the shop sees: the client's path and query
    /// (origin-form), or the shop's own authority for `CONNECT`.
    fn target(&self, connect: bool, uri: Uri) -> Uri {
        let mut parts = uri::Parts::default();
        if connect {
            parts.authority = Some(self.base.authority.clone());
        } else {
            let path = uri.into_parts().path_and_query;
            parts.path_and_query = Some(path.unwrap_or(PathAndQuery::from_static("/")));
        }
        Uri::from_parts(parts).expect("an authority or a path alone is a valid target")
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
