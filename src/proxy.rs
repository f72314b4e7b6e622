//! The request pipeline: [`Proxy::try_handle`] reads top to bottom as the
//! stages a request goes through; [`Proxy::handle`] turns every failure into a
//! response and records the outcome exactly once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::authority::{self, AmbiguousHost};
use crate::client_ip::TrustedProxies;
use crate::metrics::{Decision, Metrics, RouteKind};
use crate::respond::{self, ProxyBody};
use crate::upstream::{Hop, Upstream, UpstreamError};

/// Why a request was not forwarded or not answered by the shop.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    AmbiguousHost(#[from] AmbiguousHost),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl RequestError {
    fn decision(&self) -> Decision {
        match self {
            Self::AmbiguousHost(_) => Decision::Reject,
            Self::Upstream(_) => Decision::UpstreamError,
        }
    }
}

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub peer: SocketAddr,
    /// `https` on the TLS listener, `http` on the cleartext one.
    pub scheme: &'static str,
}

/// The shared handles of the pipeline. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: Upstream,
    trusted: TrustedProxies,
    metrics: Metrics,
}

// === impl Proxy ===

impl Proxy {
    pub fn new(upstream: Upstream, trusted: TrustedProxies, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                upstream,
                trusted,
                metrics,
            }),
        }
    }

    /// Never fails: every error becomes a response, logged and counted once.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        conn: Conn,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let version = req.version();
        // Only build the log line's fields when someone will read them.
        let described = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (req.method().clone(), req.uri().path().to_owned()));
        let (response, decision) = match self.try_handle(req, conn).await {
            Ok(response) => (response, Decision::Allow),
            Err(error) => {
                self.report(&error, conn);
                (respond::for_error(&error, version), error.decision())
            }
        };
        let route = RouteKind::Passthrough;
        let elapsed = started.elapsed();
        self.inner.metrics.record_request(route, decision, elapsed);
        if let Some((method, path)) = described {
            tracing::debug!(
                peer = %conn.peer,
                %method,
                path,
                status = response.status().as_u16(),
                decision = decision.as_str(),
                route = route.as_str(),
                micros = elapsed.as_micros() as u64,
                "request"
            );
        }
        Ok(response)
    }

    /// The pipeline, one line per stage.
    async fn try_handle(
        &self,
        req: Request<Incoming>,
        conn: Conn,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let host = authority::resolve(&req)?;
        let client = self.inner.trusted.resolve(conn.peer.ip(), req.headers());
        let hop = Hop {
            peer: conn.peer.ip(),
            peer_trusted: self.inner.trusted.contains(conn.peer.ip()),
            scheme: conn.scheme,
        };
        tracing::trace!(%client, "client resolved");
        let (response, elapsed) = self.inner.upstream.forward(req, host, hop).await?;
        self.inner.metrics.record_upstream(elapsed);
        Ok(response.map(Either::Left))
    }

    fn report(&self, error: &RequestError, conn: Conn) {
        match error {
            RequestError::AmbiguousHost(e) => {
                tracing::debug!(peer = %conn.peer, error = %e, "request refused");
            }
            RequestError::Upstream(e) => {
                self.inner.metrics.record_upstream_error(e.kind());
                tracing::warn!(kind = e.kind().as_str(), error = %chain(e), "upstream failed");
            }
        }
    }
}

/// An error and its causes on one line: `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
