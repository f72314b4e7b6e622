//! The admin listener: `/metrics`, `/healthz`, `/readyz`.
//!
//! It is plain HTTP on a separate address (loopback by default) so that
//! scrapes and probes never compete with shop traffic for connection slots,
//! and so that it can be firewalled apart.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::respond::ProxyBody;
use crate::upstream::Upstream;

/// The admin endpoints' shared handles. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct Admin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    upstream: Upstream,
}

impl Admin {
    pub fn new(registry: Registry, upstream: Upstream) -> Self {
        Self {
            inner: Arc::new(Inner { registry, upstream }),
        }
    }

    pub async fn handle<B>(&self, req: Request<B>) -> Response<ProxyBody> {
        let path = req.uri().path();
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
    async fn ready(&self) -> Response<ProxyBody> {
        match self.inner.upstream.reachable().await {
            true => text(StatusCode::OK, "ready\n"),
            false => text(StatusCode::SERVICE_UNAVAILABLE, "upstream unreachable\n"),
        }
    }
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
