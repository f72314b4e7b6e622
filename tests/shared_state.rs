//! `[state] backend = "redis"`: two replicas in this process share one
//! private Redis. Limits, bans and unbans made through one apply on the
//! other; with Redis killed, `on_backend_error` decides, and a restarted
//! Redis is used again without restarting credgate.

use std::time::Duration;

use http::{Request, StatusCode};

use crate::support::client::{self, admin, full, Answer};
use crate::support::redis::RedisServer;
use crate::support::*;

pub const TOKEN: &str = ADMIN_TOKEN;
pub const WRONG: &str = "not-the-password";
pub const RIGHT: &str = "wonderland-42";

/// Two replicas of one config sharing `redis`, trusting 127.0.0.1's
/// `X-Forwarded-For`.
pub struct Replicas {
    pub cert: TestCert,
    _shop: credgate::demo::Shop,
    pub a: RunningProxy,
    pub b: RunningProxy,
    client: TestClient,
}

async fn replicas(redis: &RedisServer, state: &str, tables: &str) -> Replicas {
    let state = format!(
        "backend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"250ms\"\n{state}",
        redis.url()
    );
    replicas_with(&state, tables).await
}

/// Two replicas of one config whose `[state]` table is `state`.
pub async fn replicas_with(state: &str, tables: &str) -> Replicas {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = trusting_server_with_admin(&cert);
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n[state]\n{state}\n{tables}\n",
        config_toml(&cert, shop.addr(), &server, ""),
    );
    let a = start_proxy(&toml).await;
    let b = start_proxy(&toml).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    Replicas {
        cert,
        _shop: shop,
        a,
        b,
        client,
    }
}

impl Replicas {
    pub async fn login(&self, on: &RunningProxy, from: &str, password: &str) -> StatusCode {
        self.login_answer(on, from, password).await.status
    }

    async fn login_answer(&self, on: &RunningProxy, from: &str, password: &str) -> Answer {
        let request = form_login(on.url("/login"), from, "alice@example.com", password);
        self.client.send(request).await
    }

    pub async fn login_as(
        &self,
        on: &RunningProxy,
        from: &str,
        user: &str,
        password: &str,
    ) -> StatusCode {
        let request = form_login(on.url("/login"), from, user, password);
        self.client.send(request).await.status
    }

    /// Failed logins from `from`, alternating replicas, until one is
    /// refused; returns how many passed. (Limits are charged by failures: a
    /// login that succeeds gives its cell back.)
    pub async fn passed_until_refused(&self, from: &str, limit: usize) -> usize {
        for i in 0..limit {
            let on = if i % 2 == 0 { &self.a } else { &self.b };
            if self.login(on, from, WRONG).await != StatusCode::UNAUTHORIZED {
                return i;
            }
        }
        limit
    }
}

#[tokio::test]
async fn attempts_spread_over_two_replicas_trip_the_ip_limit_at_its_total() {
    let redis = RedisServer::start();
    let limits = "[limits]\nip = { rate = \"1/min\", burst = 6 }\nsubnet = \"off\"\nusername = \"off\"\nglobal = \"off\"";
    let r = replicas(&redis, "", limits).await;
    assert_eq!(r.passed_until_refused("192.0.2.10", 20).await, 6);
    assert_eq!(
        r.login(&r.a, "192.0.2.11", RIGHT).await,
        StatusCode::OK,
        "another address has its own budget"
    );
    // Keys per tracked client: its limit and its suspicion counters (a
    // client whose login succeeded got its cell back: no limit key); risk's
    // memory: each client's and their one subnet's counts, and the username
    // that logged in; the /24's record of successful logins (`subnet_ban`);
    // plus the shared username hash key.
    assert_eq!(
        redis.keys(),
        2 + 1 + (2 + 1 + 1) + 1 + 1,
        "{}",
        redis.command("KEYS *")
    );
    for key in redis
        .command("KEYS *")
        .lines()
        .filter(|l| l.starts_with("credgate:"))
    {
        eprintln!("{key}: {}", redis.command(&format!("TTL {key}")));
    }
}

#[tokio::test]
async fn a_ban_through_one_replica_applies_on_the_other_and_so_does_the_unban() {
    let redis = RedisServer::start();
    let r = replicas(&redis, "", "").await;
    let bans = r.a.admin_url("/admin/bans");
    let created = client::admin_post(
        &bans,
        r#"{"target": "203.0.113.9", "duration": "1h"}"#,
        TOKEN,
    )
    .await;
    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(
        r.login(&r.b, "203.0.113.9", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    let (_, listing) = admin("GET", &r.b.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(listing.contains("203.0.113.9/32"), "{listing}");

    let unban = r.b.admin_url("/admin/bans/203.0.113.9");
    assert_eq!(admin("DELETE", &unban, Some(TOKEN)).await.0, StatusCode::OK);
    assert_eq!(r.login(&r.a, "203.0.113.9", RIGHT).await, StatusCode::OK);

    // A network ban, too.
    let net = r#"{"target": "2001:db8:bad::/48", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&bans, net, TOKEN).await,
        StatusCode::CREATED
    );
    assert_eq!(
        r.login(&r.b, "2001:db8:bad::7", RIGHT).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn suspicion_is_shared_a_client_failing_on_both_replicas_is_banned_on_both() {
    let redis = RedisServer::start();
    let r = replicas(
        &redis,
        "",
        "[suspicion]\nmin_attempts = 4\nfailure_ratio = 0.5",
    )
    .await;
    for i in 0..4 {
        let on = if i % 2 == 0 { &r.a } else { &r.b };
        r.login(on, "198.51.100.4", WRONG).await;
    }
    assert_eq!(
        r.login(&r.a, "198.51.100.4", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.login(&r.b, "198.51.100.4", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    let (_, listing) = admin("GET", &r.a.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(listing.contains("\"failures\""), "{listing}");
}

/// Risk's history is shared: a client that failed five times on replica A
/// is a failing client on replica B (medium risk, which this config
/// throttles), while another client of B is not.
#[tokio::test]
async fn risk_history_built_on_one_replica_decides_on_the_other() {
    let redis = RedisServer::start();
    let tables = "[limits]\nip = \"off\"\nsubnet = \"off\"\nusername = \"off\"\nglobal = \"off\"\n\
        [suspicion]\nenabled = false\n[attack]\nenabled = false\n\
        [risk]\non_medium = \"throttle\"\non_high = \"block\"";
    let r = replicas(&redis, "", tables).await;
    let from = "198.51.100.77";
    for attempt in 0..5 {
        let status = r.login(&r.a, from, WRONG).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    assert_eq!(r.login(&r.b, "198.51.100.78", RIGHT).await, StatusCode::OK);
    let answer = r.login_answer(&r.b, from, RIGHT).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert!(answer.body.contains("unusual"), "{}", answer.body);
}

/// With Redis killed, five attempts from one address on one replica, one
/// more than the burst of four: `local` limits in this replica's memory and
/// throttles the fifth, `allow` lets all five through, `deny` refuses every
/// one with `Retry-After: 1`. Under `local`, an operator's ban made while
/// Redis is down applies on the replica that took it, not on the other.
async fn with_redis_down(policy: &str, down: [StatusCode; 5]) {
    {
        let mut redis = RedisServer::start();
        let state = format!("on_backend_error = \"{policy}\"");
        let limits = "[limits]\nip = { rate = \"1/min\", burst = 4 }";
        let r = replicas(&redis, &state, limits).await;
        assert_eq!(r.passed_until_refused("192.0.2.20", 10).await, 4);

        redis.kill();
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(r.login_answer(&r.a, "192.0.2.30", WRONG).await);
        }
        let statuses: Vec<_> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, down, "on_backend_error = {policy}");
        for answer in answers.iter().filter(|a| a.status == THROTTLED) {
            let retry_after: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            match policy {
                "deny" => assert_eq!(retry_after, 1),
                // The local limiter's own wait: one token of 1/min.
                _ => assert!((1..=60).contains(&retry_after), "{retry_after}"),
            }
        }
        // The other replica's budget is its own (local) or none (allow, deny).
        assert_eq!(
            r.login(&r.b, "192.0.2.30", WRONG).await,
            down[0],
            "{policy}"
        );
        if policy == "local" {
            ban_while_redis_is_down(&r).await;
        }
        let (status, ready) = get(&r.a.admin_url("/readyz")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ready.contains("degraded"), "{policy}: {ready}");
        let errors = sample(
            &scrape(r.b.addrs.admin).await,
            "credgate_state_backend_errors_total",
            &[],
        );
        assert!(errors >= 1.0, "{policy}: {errors}");

        redis.restart();
        // Each replica finds its connection broken at its next command, and
        // reconnects; both must be back before the shared budget is tested.
        let back = eventually_async(Duration::from_secs(30), || async {
            r.login(&r.a, "192.0.2.40", RIGHT).await;
            r.login(&r.b, "192.0.2.41", RIGHT).await;
            get(&r.a.admin_url("/readyz")).await.1 == "ready\n"
                && get(&r.b.admin_url("/readyz")).await.1 == "ready\n"
        })
        .await;
        assert!(back, "{policy}: redis is used again after a restart");
        assert_eq!(
            r.passed_until_refused("192.0.2.50", 10).await,
            4,
            "{policy}"
        );
        drop(r.cert);
    }
}

const FAILED: StatusCode = StatusCode::UNAUTHORIZED;
const THROTTLED: StatusCode = StatusCode::TOO_MANY_REQUESTS;

#[tokio::test]
async fn with_redis_down_local_limits_in_memory_and_a_restarted_redis_is_used_again() {
    with_redis_down("local", [FAILED, FAILED, FAILED, FAILED, THROTTLED]).await;
}

#[tokio::test]
async fn with_redis_down_allow_lets_logins_through_and_a_restarted_redis_is_used_again() {
    with_redis_down("allow", [FAILED; 5]).await;
}

#[tokio::test]
async fn with_redis_down_deny_answers_429_retry_after_1_and_a_restarted_redis_is_used_again() {
    with_redis_down("deny", [THROTTLED; 5]).await;
}

/// An operator's ban while Redis is down: in force on the replica that
/// took it, and only there.
async fn ban_while_redis_is_down(r: &Replicas) {
    let bans = r.a.admin_url("/admin/bans");
    let body = r#"{"target": "203.0.113.77", "duration": "1h"}"#;
    assert_eq!(
        client::admin_post(&bans, body, TOKEN).await,
        StatusCode::CREATED
    );
    assert_eq!(
        r.login(&r.a, "203.0.113.77", RIGHT).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(r.login(&r.b, "203.0.113.77", RIGHT).await, StatusCode::OK);
}

#[tokio::test]
async fn a_replica_started_while_redis_is_down_serves_and_connects_later() {
    let mut redis = RedisServer::reserve();
    let limits = "[limits]\nip = { rate = \"1/min\", burst = 3 }";
    let r = replicas(&redis, "", limits).await;
    assert_eq!(r.login(&r.a, "192.0.2.60", RIGHT).await, StatusCode::OK);
    let (_, ready) = get(&r.a.admin_url("/readyz")).await;
    assert!(ready.contains("degraded"), "{ready}");

    redis.restart();
    // The state's maintenance tries again every few seconds.
    let connected = eventually_async(Duration::from_secs(30), || async {
        r.login(&r.a, "192.0.2.61", RIGHT).await;
        r.login(&r.b, "192.0.2.61", RIGHT).await;
        get(&r.a.admin_url("/readyz")).await.1 == "ready\n"
            && get(&r.b.admin_url("/readyz")).await.1 == "ready\n"
    })
    .await;
    assert!(connected, "both replicas connect once Redis is up");
    assert_eq!(r.passed_until_refused("192.0.2.62", 10).await, 3);
}

/// `rediss://`: TLS through rustls with the ring provider (no second
/// crypto provider in the build), verified against the CA certificates of
/// the system, here the test certificate through `SSL_CERT_FILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_connect_over_tls() {
    use crate::support::binary::Process;
    let cert = TestCert::generate();
    let redis = RedisServer::start_tls(&cert.cert_path(), &cert.key_path());
    let shop = start_shop().await;
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n[limits]\nip = {{ rate = \"1/min\", burst = 2 }}\n\
         [state]\nbackend = \"redis\"\nredis_url = \"rediss://127.0.0.1:{}\"\n\
         redis_timeout = \"500ms\"\n",
        config_toml(&cert, shop.addr(), "", ""),
        redis.port
    );
    let path = cert.dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    let proxy = Process::serve_with_env(&path, &[("SSL_CERT_FILE", &cert.cert_path())]);
    let (_, ready) = get(&format!("http://{}/readyz", proxy.admin)).await;
    assert_eq!(ready, "ready\n", "{}", proxy.logs());
    let client = TestClient::new(&cert.der, Version::Http1);
    let login = || {
        Request::post(format!("https://127.0.0.1:{}/login", proxy.proxy.port()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(
                "username=alice%40example.com&password=not-the-password",
            ))
            .unwrap()
    };
    assert_eq!(client.send(login()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(client.send(login()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        client.send(login()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let errors = sample(
        &scrape(proxy.admin).await,
        "credgate_state_backend_errors_total",
        &[],
    );
    assert_eq!(errors, 0.0, "{}", proxy.logs());
}

/// Polls an async `condition` every 50 ms until it holds or `limit` passes.
async fn eventually_async<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The username sketch is predictable once the hash key is known: the test
/// sets it before the replicas start (they take an existing one), picks
/// usernames by their sketch bit, and sees the spray ban at exactly the
/// eighth distinct username (`distinct_usernames = 8`), not at a username
/// that only repeats a bit.
#[tokio::test]
async fn a_username_spray_is_banned_at_exactly_the_eighth_distinct_username() {
    let redis = RedisServer::start();
    assert!(redis
        .command("SET credgate:{hashkey} spray-test-key")
        .starts_with("+OK"));
    let r = replicas(&redis, "", "[suspicion]\nmin_attempts = 1000").await;
    let (distinct, repeat) = sketch_usernames(b"spray-test-key", 8);
    let mut sequence: Vec<&str> = distinct[..7].iter().map(String::as_str).collect();
    sequence.push(&repeat);
    sequence.push(&distinct[7]);
    for (i, user) in sequence.iter().enumerate() {
        let on = if i % 2 == 0 { &r.a } else { &r.b };
        let status = r.login_as(on, "198.51.100.9", user, WRONG).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {}: {user}",
            i + 1
        );
    }
    let banned = r
        .login_as(&r.b, "198.51.100.9", "alice@example.com", RIGHT)
        .await;
    assert_eq!(
        banned,
        StatusCode::FORBIDDEN,
        "not banned after 8 usernames"
    );
    let (_, listing) = admin("GET", &r.a.admin_url("/admin/bans"), Some(TOKEN)).await;
    assert!(listing.contains("\"username_spray\""), "{listing}");
}

/// `count` usernames whose sketch bits differ, and one more whose bit
/// repeats the first one's, under the shared hash key `key`.
fn sketch_usernames(key: &[u8], count: usize) -> (Vec<String>, String) {
    use sha1::{Digest, Sha1};
    let bit = |name: &str| {
        let digest = Sha1::new().chain_update(key).chain_update(name).finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap()) % 64
    };
    let names = (0..).map(|i| format!("victim{i}@example.com"));
    let mut bits = std::collections::HashSet::new();
    let distinct: Vec<String> = names
        .clone()
        .filter(|name| bits.insert(bit(name)))
        .take(count)
        .collect();
    let first = bit(&distinct[0]);
    let repeat = names
        .filter(|name| *name != distinct[0] && bit(name) == first)
        .find(|_| true)
        .unwrap();
    (distinct, repeat)
}

/// Every failed Redis command is counted; the warning is logged at most
/// once every 10 seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failures_are_each_counted_and_logged_at_most_every_10_seconds() {
    use crate::support::binary::Process;
    let cert = TestCert::generate();
    let mut redis = RedisServer::start();
    let shop = start_shop().await;
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n[state]\nbackend = \"redis\"\n\
         redis_url = \"{}\"\nredis_timeout = \"250ms\"\n",
        config_toml(&cert, shop.addr(), "", ""),
        redis.url()
    );
    let path = cert.dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    let mut proxy = Process::serve(&path);
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/login", proxy.proxy.port());
    redis.kill();
    let down = std::time::Instant::now();
    for _ in 0..5 {
        let login = form_login(url.clone(), "", "alice@example.com", RIGHT);
        assert_eq!(client.send(login).await.status, StatusCode::OK);
    }
    let errors = sample(
        &scrape(proxy.admin).await,
        "credgate_state_backend_errors_total",
        &[],
    );
    // Each login asks Redis at least twice (screen, limits).
    assert!(errors >= 10.0, "{errors} failures counted");
    let (_, logs) = proxy.stop();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("state backend failing"))
        .count();
    let allowed = 1 + down.elapsed().as_secs() as usize / 10;
    assert!(
        (1..=allowed).contains(&warnings),
        "{warnings} warnings in {:?}: {logs}",
        down.elapsed()
    );
}

#[tokio::test]
async fn an_operators_reason_is_shared_and_old_index_entries_still_read() {
    let redis = RedisServer::start();
    let r = replicas(&redis, "", "").await;
    let ban = r#"{"target": "198.51.100.0/24", "duration": "1h", "reason": "card testing", "by": "alice"}"#;
    let created = client::admin_post(&r.a.admin_url("/admin/bans"), ban, TOKEN).await;
    assert_eq!(created, StatusCode::CREATED);
    // Bans as a build without reasons and origins listed them.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    for command in [
        format!("ZADD credgate:{{bans}}:net {until} 192.0.2.0/24"),
        "HSET credgate:{bans}:reason 192.0.2.0/24 manual".to_owned(),
        format!("ZADD credgate:{{bans}}:ip {until} 192.0.2.77"),
        "HSET credgate:{bans}:reason 192.0.2.77 failures".to_owned(),
    ] {
        assert!(!redis.command(&command).starts_with('-'), "{command}");
    }

    let (_, listing) = admin("GET", &r.b.admin_url("/admin/bans"), Some(TOKEN)).await;
    let bans: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let find = |target: &str| {
        bans.as_array()
            .and_then(|all| all.iter().find(|b| b["target"] == target))
            .unwrap_or_else(|| panic!("no {target} in {listing}"))
            .clone()
    };
    let manual = find("198.51.100.0/24");
    assert_eq!(manual["origin"], "manual");
    assert_eq!(manual["reason"], "card testing");
    assert_eq!(manual["by"], "alice");
    let old_manual = find("192.0.2.0/24");
    assert_eq!(
        (&old_manual["origin"], &old_manual["reason"]),
        (&"manual".into(), &"manual".into())
    );
    assert!(old_manual.get("by").is_none(), "{old_manual}");
    let old_automatic = find("192.0.2.77/32");
    assert_eq!(old_automatic["origin"], "automatic");
    assert_eq!(old_automatic["reason"], "failures");

    // The other replica names the covering ban too.
    let inside = r.b.admin_url("/admin/bans/198.51.100.7");
    let (status, body) = admin("DELETE", &inside, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("card testing"), "{body}");
}

#[tokio::test]
async fn the_fingerprint_limit_lives_in_redis_charged_by_failures_across_addresses() {
    let redis = RedisServer::start();
    let limits = "[limits]\nfingerprint = { rate = \"1/min\", burst = 4 }\nip = \"off\"\n\
                  subnet = \"off\"\nusername = \"off\"\nglobal = \"off\"";
    let r = replicas(&redis, "", limits).await;
    // One TLS connection (one replica: the client's second connection, to
    // the other, would offer a session ticket, and a resumed ClientHello
    // has another JA4), a new address every attempt.
    for i in 0..10 {
        let from = format!("192.0.2.{i}");
        assert_eq!(
            r.login(&r.a, &from, RIGHT).await,
            StatusCode::OK,
            "success {i} refunded"
        );
    }
    for i in 10..14 {
        let from = format!("192.0.2.{i}");
        assert_eq!(r.login(&r.a, &from, WRONG).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        r.login(&r.a, "192.0.2.99", WRONG).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let keys = redis.command("KEYS *");
    assert!(keys.contains("credgate:{fp:t13"), "{keys}");
}
