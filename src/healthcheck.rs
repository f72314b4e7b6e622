//! `credgate healthcheck`: one `GET /healthz` against the admin listener, for
//! container runtimes and service managers that need a probe command (the
//! runtime image has no curl).
//!
//! The probe is plain HTTP, like the admin listener, and has one deadline for
//! everything (connect, request, response head, body), so that a hung process
//! is reported unhealthy instead of hanging the probe.

use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The admin listener's default address (`server.admin_listen`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9090/healthz";

/// How long the whole probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Why the probe says unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{url}: only http:// URLs are supported (the admin listener is plain HTTP)")]
    Scheme { url: Uri },
    #[error("{url}: no answer within {}s", after.as_secs_f64())]
    Timeout { url: Uri, after: Duration },
    #[error("{url}: request failed")]
    Request {
        url: Uri,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url}: answered {status}")]
    Status { url: Uri, status: StatusCode },
}

/// Returns `Ok` if and only if `url` answers a GET with `200 OK` within
/// `timeout`.
pub async fn probe(url: &Uri, timeout: Duration) -> Result<(), ProbeError> {
    if url.scheme_str() != Some("http") {
        return Err(ProbeError::Scheme { url: url.clone() });
    }
    match tokio::time::timeout(timeout, get(url)).await {
        Ok(Ok(StatusCode::OK)) => Ok(()),
        Ok(Ok(status)) => Err(ProbeError::Status {
            url: url.clone(),
            status,
        }),
        Ok(Err(source)) => Err(ProbeError::Request {
            url: url.clone(),
            source,
        }),
        Err(_) => Err(ProbeError::Timeout {
            url: url.clone(),
            after: timeout,
        }),
    }
}

/// The status of a GET, after reading the (small) body, so that a listener
/// that stalls mid-answer counts as unhealthy.
async fn get(url: &Uri) -> Result<StatusCode, hyper_util::client::legacy::Error> {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let response = client.get(url.clone()).await?;
    let status = response.status();
    // A body error after the head is still an answer: the status decides.
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_is_refused_before_connecting() {
        let url: Uri = "https://127.0.0.1:9/healthz".parse().unwrap();
        let err = probe(&url, TIMEOUT).await.unwrap_err();
        assert!(matches!(err, ProbeError::Scheme { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_listener_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Uri = format!("http://{}/healthz", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let err = probe(&url, Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(err, ProbeError::Timeout { .. }), "{err}");
        assert!(err.to_string().ends_with("no answer within 0.1s"), "{err}");
    }
}
