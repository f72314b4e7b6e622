//! The connections to the shop, kept open between requests.
//!
//! There is one shop, so the pool is one list, not a map keyed by origin:
//! hyper-util's general pool hashes the origin (SipHash, byte by byte) and
//! spawns a task per request to wait for the connection to come back, about
//! 4 k instructions of a 55 k-instruction GET (benches/load).
//!
//! A connection goes back on the list as soon as the shop's response head
//! has arrived, while its body may still be streaming: hyper reports a
//! connection ready only once the previous exchange is over in both
//! directions, and only ready connections are taken, so two requests never
//! share one. A connection the shop closed, or that closed after an error
//! or a cancelled request, is never ready again and is dropped from the list.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

use super::UpstreamError;
use crate::body::ProxyBody;

/// The connector's error: an I/O error, a timeout or a TLS failure.
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Where the connector connects: the upstream's scheme and authority.
    origin: Uri,
    /// Most recently returned last: taken first, so that a quiet period
    /// lets the rest reach the idle timeout.
    kept: Mutex<Vec<Kept>>,
    /// `upstream.pool_max_idle`: connections kept for reuse, at most.
    max: usize,
    /// `upstream.pool_idle_timeout`.
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Kept {
    sender: SendRequest<ProxyBody>,
    /// When it went back on the list: at its last response head.
    since: Instant,
}

// === impl Pool ===

impl Pool {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        max: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            connector,
            origin,
            kept: Mutex::new(Vec::new()),
            max,
            idle_timeout,
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) on a kept connection, or a
    /// new one, and returns the response head. `now` is when the request
    /// set out: a connection idle past the timeout by then is not used.
    pub(super) async fn send(
        &self,
        req: Request<ProxyBody>,
        now: Instant,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = match self.take(now) {
            Some(sender) => sender,
            // Boxed: a connection is opened seldom, and its future inline
            // would make every request's future (moved into the timeout,
            // and with it into the pipeline's) as large as a handshake's.
            None => Box::pin(self.connect()).await?,
        };
        let response = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Protocol)?;
        // A switched connection belongs to the tunnel now.
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            self.put(sender);
        }
        Ok(response)
    }

    /// Closes the connections idle past the timeout, and forgets closed
    /// ones: called periodically, so that a quiet proxy lets go of the
    /// shop's sockets.
    pub(super) fn expire(&self, now: Instant) {
        self.lock()
            .retain(|kept| !kept.sender.is_closed() && !self.expired(kept, now));
    }

    /// Connections on the list, busy or idle.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The most recently returned connection that is ready, dropping any
    /// ready one idle past the timeout on the way.
    fn take(&self, now: Instant) -> Option<SendRequest<ProxyBody>> {
        let mut kept = self.lock();
        while let Some(i) = kept.iter().rposition(|k| k.sender.is_ready()) {
            let candidate = kept.remove(i);
            if !self.expired(&candidate, now) {
                return Some(candidate.sender);
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<ProxyBody>) {
        let mut kept = self.lock();
        if kept.len() >= self.max {
            kept.retain(|k| !k.sender.is_closed());
        }
        // Over the cap the sender is dropped: hyper finishes the exchange
        // in flight, then closes the connection.
        if kept.len() < self.max {
            kept.push(Kept {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        let io = self
            .connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(UpstreamError::Connect)?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Returns true if and only if `kept` is idle and has been for longer
    /// than the idle timeout at `now`.
    fn expired(&self, kept: &Kept, now: Instant) -> bool {
        kept.sender.is_ready() && now.saturating_duration_since(kept.since) > self.idle_timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        // A list of senders is whole at every step: a panic elsewhere
        // leaves nothing half-done in it.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
