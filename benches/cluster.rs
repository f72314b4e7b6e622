//! Scale figures for `backend = "redis-cluster"`: attempts per second
//! through 1, 2 and 4 credgate replicas (each a `State` with its own
//! cluster connection, as separate processes would have) sharing a private
//! cluster of three primaries and three replicas; the latency one attempt
//! adds; and the keys and bytes each tracked client costs in the cluster.
//! An attempt is the state path of one login: screen, admit (the ip,
//! subnet, username and global limits of the state bench; 10,000 clients in
//! rotation come back seldom enough to be admitted, so every limit is a
//! round trip), observe.
//!
//! ```sh
//! cargo bench --bench cluster
//! ```
//!
//! Everything (cluster, replicas, bench) shares this machine's cores, so
//! the figures are a floor for a real deployment, where Redis nodes and
//! credgate replicas have cores of their own.

#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis;
#[allow(dead_code)]
#[path = "../tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credgate::client_ip::ClientIp;
use credgate::config::Config;
use credgate::metrics::Metrics;
use credgate::rate_limit::{AttemptKeys, UsernameKey};
use credgate::reputation::Observation;
use credgate::route::Routes;
use credgate::state::State;

use self::redis_cluster::RedisCluster;

/// Attempts each replica keeps in flight.
const IN_FLIGHT: u32 = 16;
const CLIENTS: u32 = 10_000;
const RUN: Duration = Duration::from_secs(5);

fn replica(cluster: &RedisCluster) -> State {
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let toml = format!(
        r#"
        [server]
        tls_cert = "unused"
        tls_key = "unused"
        [upstream]
        url = "http://127.0.0.1:1"
        [limits]
        ip = {{ rate = "20/min", burst = 10 }}
        subnet = {{ rate = "100/min", burst = 30 }}
        username = {{ rate = "10/min", burst = 5 }}
        global = {{ rate = "1000000/s", burst = 1000000 }}
        [state]
        backend = "redis-cluster"
        redis_urls = [{}]
        redis_timeout = "1s"
        "#,
        urls.join(", ")
    );
    let config = Config::from_toml(&toml).expect("a valid bench config");
    let metrics = Metrics::new(&prometheus::Registry::new(), &Routes::default()).expect("metrics");
    State::new(&config, metrics.state_backend_errors())
}

fn client(i: u32) -> ClientIp {
    ClientIp(IpAddr::from(
        (0x0a00_0000u32.wrapping_add(i * 256)).to_be_bytes(),
    ))
}

async fn attempt(state: &State, i: u32) {
    let keys = AttemptKeys {
        client: client(i),
        username: UsernameKey(u64::from(i.wrapping_mul(2_654_435_761))),
        fingerprint: None,
        known_device: false,
    };
    let _ = state.screen(keys.client, true).await;
    let _ = state.admit(&keys).await;
    let observation = Observation {
        username: keys.username,
        leaked_pair: false,
        failed: Some(i % 4 == 0),
    };
    state.observe(keys.client, observation).await;
}

/// Attempts per second and mean latency through `replicas`, each with
/// [`IN_FLIGHT`] attempts at a time, for [`RUN`].
async fn throughput(replicas: &[State]) -> (f64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let waited = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (r, state) in replicas.iter().enumerate() {
        for w in 0..IN_FLIGHT {
            let (state, done, waited) = (state.clone(), done.clone(), waited.clone());
            let mut next = (r as u32 * IN_FLIGHT + w) * 7919;
            tasks.push(tokio::spawn(async move {
                while start.elapsed() < RUN {
                    let began = Instant::now();
                    attempt(&state, next % CLIENTS).await;
                    waited.fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                    next = next.wrapping_add(1);
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("a bench task");
    }
    let n = done.load(Ordering::Relaxed).max(1);
    let rate = n as f64 / start.elapsed().as_secs_f64();
    (
        rate,
        Duration::from_micros(waited.load(Ordering::Relaxed) / n),
    )
}

fn used_memory(cluster: &RedisCluster) -> (u64, u64) {
    let primaries = cluster
        .nodes
        .iter()
        .filter(|n| n.command("ROLE").contains("master"));
    primaries.fold((0, 0), |(keys, bytes), n| {
        let info = n.command("INFO memory");
        let used = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        (keys + n.keys(), bytes + used)
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let cluster = RedisCluster::start();
    let replicas: Vec<State> = (0..4).map(|_| replica(&cluster)).collect();
    rt.block_on(async {
        for state in &replicas {
            state.connect().await.expect("a redis cluster");
        }
        // Keys and bytes: every client once, through one replica.
        let (keys_before, bytes_before) = used_memory(&cluster);
        for i in 0..CLIENTS {
            attempt(&replicas[0], i).await;
        }
        let (keys, bytes) = used_memory(&cluster);
        let clients = f64::from(CLIENTS);
        println!(
            "per tracked client: {:.2} keys, ~{:.0} bytes of used_memory (sum over primaries)",
            (keys - keys_before) as f64 / clients,
            bytes.saturating_sub(bytes_before) as f64 / clients
        );
        // One attempt at a time: the latency the cluster adds.
        let began = Instant::now();
        for i in 0..2_000 {
            attempt(&replicas[0], i).await;
        }
        println!(
            "one attempt at a time: {:?} per attempt",
            began.elapsed() / 2_000
        );
        for n in [1, 2, 4] {
            let (rate, latency) = throughput(&replicas[..n]).await;
            println!(
                "{n} replica(s), {IN_FLIGHT} attempts in flight each: \
                 {rate:.0} attempts/s, {latency:?} mean per attempt"
            );
        }
    });
    assert!(
        replicas.iter().all(|s| !s.degraded()),
        "the bench must measure the cluster, not the fallback"
    );
}
