//! An upgraded connection (WebSocket and any other `Upgrade`): once the shop
//! answered `101 Switching Protocols`, the client's bytes and the shop's are
//! copied both ways until either side closes, the connection stays idle for
//! the idle timeout, or the server shuts down. It runs in the connection's
//! own task, so it keeps its slot under `max_connections`.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::idle::Activity;

/// The two ends of an upgrade: the client's, the shop's.
pub type Tunnel = (OnUpgrade, OnUpgrade);

/// Copies bytes both ways until the tunnel ends. `activity` is the client
/// connection's: its transport notes every byte the tunnel moves.
pub async fn join(
    (client, shop): Tunnel,
    activity: &Activity,
    idle_timeout: Duration,
    shutdown: &CancellationToken,
    peer: SocketAddr,
) {
    let (client, shop) = match tokio::try_join!(client, shop) {
        Ok(ends) => ends,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "upgrade failed");
            return;
        }
    };
    let (mut client, mut shop) = (TokioIo::new(client), TokioIo::new(shop));
    activity.touch();
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut shop) => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "upgraded connection ended with an error");
            }
        }
        _ = activity.idle_for(idle_timeout) => {
            tracing::debug!(%peer, "closing an upgraded connection that stayed idle");
        }
        _ = shutdown.cancelled() => {}
    }
}
