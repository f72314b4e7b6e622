//! The state path of one login attempt (`State::screen`, `State::admit`,
//! `State::observe`), with the ip, subnet, username and global limits on and
//! suspicion tracking rotating clients; and the memory each tracked client
//! costs. Twice: in process, and on a private `redis-server` (which must be
//! installed) to show what sharing state across replicas adds per attempt,
//! and how many keys and bytes Redis holds per client.
//!
//! ```sh
//! cargo bench --bench state
//! ```

#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis_server;

use std::net::IpAddr;

use credgate::client_ip::ClientIp;
use credgate::config::Config;
use credgate::metrics::Metrics;
use credgate::rate_limit::{AttemptKeys, UsernameKey};
use credgate::reputation::Observation;
use credgate::route::Routes;
use credgate::state::State;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CLIENTS: u32 = 100_000;
const BATCH: u32 = 1_000;

fn state(max_tracked_clients: usize) -> State {
    local_or_redis(max_tracked_clients, "")
}

fn local_or_redis(max_tracked_clients: usize, state: &str) -> State {
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
        max_tracked_clients = {max_tracked_clients}
        {state}
        "#
    );
    let config = Config::from_toml(&toml).expect("a valid bench config");
    let metrics = Metrics::new(&prometheus::Registry::new(), &Routes::default()).expect("metrics");
    State::new(&config, metrics.state_backend_errors())
}

fn client(i: u32) -> ClientIp {
    ClientIp(IpAddr::from((0x0a00_0000u32.wrapping_add(i)).to_be_bytes()))
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

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    // Memory: the marginal cost of the second 100,000 distinct clients (the
    // first fill also pays for allocator and table warm-up).
    let filled = state(1_000_000);
    let fill = |from: u32| {
        rt.block_on(async {
            for i in from..from + CLIENTS {
                attempt(&filled, i * 256).await;
            }
        })
    };
    fill(0);
    let before = rss();
    fill(CLIENTS);
    let per_client = rss().saturating_sub(before) / u64::from(CLIENTS);
    eprintln!(
        "memory per tracked client (suspicion + ip, subnet and username limiter keys): ~{per_client} bytes"
    );
    drop(filled);

    let state = state(1_000_000);
    rt.block_on(async {
        for i in 0..CLIENTS {
            attempt(&state, i).await;
        }
    });
    let mut next = 0u32;
    let mut group = c.benchmark_group("state");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function("admit+observe", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    attempt(&state, next % CLIENTS).await;
                    next = next.wrapping_add(1);
                }
            })
        })
    });
    group.finish();
    drop(state);
    bench_redis(c, &rt);
}

/// The same attempts against Redis: three round trips each (screen, admit,
/// observe), on loopback.
fn bench_redis(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    const REDIS_CLIENTS: u32 = 10_000;
    let redis = redis_server::RedisServer::start();
    let config = format!("backend = \"redis\"\nredis_url = \"{}\"", redis.url());
    let state = local_or_redis(1_000_000, &config);
    rt.block_on(state.connect()).expect("a standalone redis");
    let used = || {
        let info = redis.command("INFO memory");
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (keys_before, bytes_before) = (redis.keys(), used());
    rt.block_on(async {
        for i in 0..REDIS_CLIENTS {
            attempt(&state, i * 256).await;
        }
    });
    let clients = f64::from(REDIS_CLIENTS);
    let keys = (redis.keys() - keys_before) as f64 / clients;
    let bytes = used().saturating_sub(bytes_before) as f64 / clients;
    eprintln!(
        "redis per tracked client (one address in its own /24, one username): \
         {keys:.2} keys, ~{bytes:.0} bytes of used_memory"
    );
    assert!(
        !state.degraded(),
        "the bench must measure Redis, not the fallback"
    );

    let mut next = 0u32;
    let mut group = c.benchmark_group("state");
    group.throughput(Throughput::Elements(100));
    group.bench_function("screen+admit+observe (redis)", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..100 {
                    attempt(&state, next % REDIS_CLIENTS).await;
                    next = next.wrapping_add(1);
                }
            })
        })
    });
    group.finish();
    assert!(!state.degraded(), "Redis failed during the bench");
}

criterion_group!(benches, bench);
criterion_main!(benches);
