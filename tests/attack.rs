//! Attack mode: a surge of failed logins switches `credgate_attack_mode` on
//! within seconds and off after it ends; an operator forces it on or off
//! through the admin API; with Redis, the replicas share it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::support::client::{admin, admin_json};
use crate::support::redis::RedisServer;
use crate::support::*;

const TOKEN: &str = ADMIN_TOKEN;

/// Two login routes, no bans (the surge must reach the shop), and a
/// detector quick enough for a test: on above 2 failures/s averaged over
/// 1 s, off after 1 s under 1/s.
const TABLES: &str = r#"
[[login]]
name = "shop"
path = "/login"
[[login]]
name = "api"
path = "/api/login"
[suspicion]
enabled = false
[attack]
min_failure_rate = 2.0
window = "1s"
hold = "1s"
"#;

fn toml(cert: &TestCert, shop: std::net::SocketAddr, extra: &str) -> String {
    let server = trusting_server_with_admin(cert);
    format!(
        "{}\n{TABLES}\n{extra}\n",
        config_toml(cert, shop, &server, "")
    )
}

async fn attack_mode(proxy: &RunningProxy, route: &str) -> f64 {
    let scrape = scrape(proxy.addrs.admin).await;
    let exported = scrape
        .samples
        .iter()
        .any(|s| s.metric == "credgate_attack_mode" && s.labels.get("route") == Some(route));
    assert!(
        exported,
        "credgate_attack_mode{{route={route:?}}} is missing"
    );
    sample(&scrape, "credgate_attack_mode", &[("route", route)])
}

/// Polls the scrape until the route's gauge is `value` or `limit` passes.
async fn attack_mode_becomes(
    proxy: &RunningProxy,
    route: &str,
    value: f64,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if attack_mode(proxy, route).await == value {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `GET /admin/attack-mode` until route `index`'s detector sees an
/// attack, whatever the mode, or `limit` passes.
async fn detected(url: &str, index: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (status, body) = admin("GET", url, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
        if routes[index]["detected"] == true {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Failed logins on `/login`, from many addresses, until dropped.
struct Surge {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

impl Surge {
    fn start(cert: &TestCert, url: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        for worker in 0..4u64 {
            let client = TestClient::new(&cert.der, Version::Http1);
            let (stop, sent, url) = (stop.clone(), sent.clone(), url.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let from = format!("198.51.{}.{}", worker, i % 250 + 1);
                    let user = format!("victim{i}@example.com");
                    let request = form_login(url.clone(), &from, &user, "hunter2");
                    let answer = client.send(request).await;
                    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        Self { stop, sent }
    }
}

impl Drop for Surge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_surge_of_failed_logins_switches_attack_mode_on_and_its_end_off() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&toml(&cert, shop.addr(), "")).await;
    assert_eq!(attack_mode(&proxy, "shop").await, 0.0);

    let surge = Surge::start(&cert, proxy.url("/login"));
    assert!(
        attack_mode_becomes(&proxy, "shop", 1.0, Duration::from_secs(10)).await,
        "attack mode stayed off after {} failed logins",
        surge.sent.load(Ordering::Relaxed)
    );
    assert_eq!(
        attack_mode(&proxy, "api").await,
        0.0,
        "the other route is quiet"
    );
    let (status, body) = admin("GET", &proxy.admin_url("/admin/attack-mode"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(routes[0]["route"], "shop");
    assert_eq!(routes[0]["mode"], "auto");
    assert_eq!(routes[0]["source"], "detected");
    assert!(routes[0]["failure_rate"].as_f64().unwrap() > 2.0, "{body}");

    drop(surge);
    assert!(
        attack_mode_becomes(&proxy, "shop", 0.0, Duration::from_secs(20)).await,
        "attack mode stayed on after the surge ended"
    );
}

/// A combo list replays pairs the filter knows as well as pairs it does
/// not: the blocked ones never reach the shop, but the detector counts
/// them as the failures they would have been.
#[tokio::test]
async fn a_surge_of_blocked_leaked_pairs_switches_attack_mode_on() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let pairs = build_filter(
        cert.dir.path(),
        "pairs.cgf",
        credgate::leaked::FilterKind::Pairs,
        &["victim@example.com:hunter2"],
    );
    let leaked = format!("[leaked]\npairs_filter = \"{}\"", pairs.display());
    let proxy = start_proxy(&toml(&cert, shop.addr(), &leaked)).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while attack_mode(&proxy, "shop").await == 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "attack mode stayed off after {sent} blocked leaked pairs"
        );
        for i in 0..20 {
            let from = format!("198.{}.{}.1", 18 + sent / 250 % 2, sent % 250 + 1);
            let url = proxy.url("/login");
            let request = form_login(url, &from, "victim@example.com", "hunter2");
            let answer = client.send(request).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "attempt {i}");
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shop.login_requests(), 0, "a leaked pair reached the shop");
}

#[tokio::test]
async fn an_operator_forces_attack_mode_on_and_off() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&toml(&cert, shop.addr(), "")).await;
    let url = proxy.admin_url("/admin/attack-mode");
    let force = |body: &str| admin_json("POST", &url, body.to_owned(), TOKEN);

    let (status, body) = force(r#"{"route": "api", "mode": "on"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(attack_mode(&proxy, "api").await, 1.0);
    assert_eq!(attack_mode(&proxy, "shop").await, 0.0);
    let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(routes[1]["mode"], "on");
    assert_eq!(routes[1]["source"], "forced");

    // Every route, off: a surge does not switch it on.
    assert_eq!(force(r#"{"mode": "off"}"#).await.0, StatusCode::OK);
    assert_eq!(attack_mode(&proxy, "api").await, 0.0);
    let surge = Surge::start(&cert, proxy.url("/login"));
    assert!(
        detected(&url, 0, Duration::from_secs(10)).await,
        "the detector sees it"
    );
    assert_eq!(attack_mode(&proxy, "shop").await, 0.0, "forced off");

    // Back to auto: the detector, which saw the surge all along, answers.
    assert_eq!(force(r#"{"mode": "auto"}"#).await.0, StatusCode::OK);
    assert!(attack_mode_becomes(&proxy, "shop", 1.0, Duration::from_secs(10)).await);
    drop(surge);

    let (status, body) = force(r#"{"route": "nope", "mode": "on"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("nope"), "{body}");
    assert_eq!(
        force(r#"{"mode": "maybe"}"#).await.0,
        StatusCode::BAD_REQUEST
    );
    let anonymous = admin("POST", &url, None).await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn replicas_sharing_redis_share_attack_mode_detected_or_forced() {
    let redis = RedisServer::start();
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let state = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"250ms\"",
        redis.url()
    );
    let config = toml(&cert, shop.addr(), &state);
    let a = start_proxy(&config).await;
    let b = start_proxy(&config).await;

    // The surge reaches replica a only; b follows within a tick or two.
    let surge = Surge::start(&cert, a.url("/login"));
    assert!(attack_mode_becomes(&a, "shop", 1.0, Duration::from_secs(10)).await);
    assert!(attack_mode_becomes(&b, "shop", 1.0, Duration::from_secs(10)).await);
    let (_, body) = admin("GET", &b.admin_url("/admin/attack-mode"), Some(TOKEN)).await;
    let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(routes[0]["source"], "shared", "{body}");
    drop(surge);
    assert!(attack_mode_becomes(&b, "shop", 0.0, Duration::from_secs(20)).await);

    // Forced on through b: on on a too, until set back to auto through a.
    let force = |on: &RunningProxy, body: &str| {
        let url = on.admin_url("/admin/attack-mode");
        let body = body.to_owned();
        async move { admin_json("POST", &url, body, TOKEN).await.0 }
    };
    assert_eq!(
        force(&b, r#"{"route": "api", "mode": "on"}"#).await,
        StatusCode::OK
    );
    assert!(attack_mode_becomes(&a, "api", 1.0, Duration::from_secs(5)).await);
    assert_eq!(
        force(&a, r#"{"route": "api", "mode": "auto"}"#).await,
        StatusCode::OK
    );
    assert!(attack_mode_becomes(&b, "api", 0.0, Duration::from_secs(5)).await);
}
