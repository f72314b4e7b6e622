//! One connection type for both Redis topologies: a single primary through
//! a `ConnectionManager`, or a Redis Cluster through the cluster client,
//! which follows MOVED and ASK redirections, refreshes its slot map when a
//! replica takes over a dead primary, and reconnects by itself.
//!
//! The topology is checked when connecting: `backend = "redis"` against a
//! cluster node, or `redis-cluster` against a standalone server, is a
//! [`Mismatch`], which stops the start rather than failing every request.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// Where to connect: the configured topology.
pub(super) enum Topology {
    Single(redis::Client),
    Cluster {
        /// Boxed: the cluster client is large, and built once.
        client: Box<ClusterClient>,
        /// Plain clients on the seeds, to ask the first that answers what
        /// it is.
        seeds: Vec<redis::Client>,
    },
}

/// A live connection; cloning is cheap (both kinds multiplex).
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The configured backend does not match the server.
#[derive(Debug, thiserror::Error)]
#[error("state.backend = \"{configured}\", but the server is {found}")]
pub struct Mismatch {
    configured: &'static str,
    found: &'static str,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error("redis")]
    Redis(#[from] RedisError),
}

// === impl Topology ===

impl Topology {
    pub fn single(url: &str) -> Result<Self, RedisError> {
        Ok(Self::Single(redis::Client::open(url)?))
    }

    pub fn cluster(urls: &[String], timeout: Duration) -> Result<Self, RedisError> {
        let client = ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout((timeout * 20).max(Duration::from_secs(1)))
            .response_timeout(timeout)
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()?;
        Ok(Self::Cluster {
            client: Box::new(client),
            seeds: urls
                .iter()
                .map(|u| redis::Client::open(u.as_str()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Connects, after checking that the server is the configured kind.
    pub async fn connect(
        &self,
        patience: Duration,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(patience)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(1000);
                let mut manager =
                    ConnectionManager::new_with_config(client.clone(), config).await?;
                if cluster_enabled(&mut manager).await? {
                    return Err(Mismatch {
                        configured: "redis",
                        found: "a Redis Cluster node (use backend = \"redis-cluster\")",
                    }
                    .into());
                }
                Ok(Connection::Single(manager))
            }
            Self::Cluster { client, seeds } => {
                if !any_cluster_enabled(seeds).await? {
                    return Err(Mismatch {
                        configured: "redis-cluster",
                        found: "a standalone Redis (use backend = \"redis\")",
                    }
                    .into());
                }
                Ok(Connection::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// Asks the seeds in order; the first that answers says whether it is a
/// cluster node (a dead seed must not keep a replica from starting).
async fn any_cluster_enabled(seeds: &[redis::Client]) -> Result<bool, RedisError> {
    let mut last = None;
    for seed in seeds {
        let answer = async {
            let mut probe = seed.get_multiplexed_async_connection().await?;
            cluster_enabled(&mut probe).await
        };
        match answer.await {
            Ok(enabled) => return Ok(enabled),
            Err(error) => last = Some(error),
        }
    }
    Err(last
        .unwrap_or_else(|| RedisError::from((redis::ErrorKind::InvalidClientConfig, "no seed"))))
}

/// Returns true if and only if the server says `cluster_enabled:1`.
async fn cluster_enabled(connection: &mut impl ConnectionLike) -> Result<bool, RedisError> {
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(connection)
        .await?;
    Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

// === impl Connection ===

impl Connection {
    /// Returns true if and only if keys of different hash slots may not
    /// meet in one script.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
