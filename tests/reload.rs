//! Reload means reload: SIGHUP and `POST /admin/reload` re-read the whole
//! configuration file through the real binary, apply what can change,
//! name what needs a restart, and refuse a bad file whole.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use nix::sys::signal::Signal;

use crate::support::binary::Process;
use crate::support::client::admin;
use crate::support::*;

/// The limits off but the one a test sets, and no bans: each test is about
/// what a reload changes.
// Attack mode off too: a steady stream of failures is a surge, and its
// untrusted-device budget would throttle before any reload.
const QUIET: &str = "[suspicion]\nenabled = false\n[attack]\nenabled = false\n\
                     [limits]\nsubnet = \"off\"\nusername = \"off\"\nglobal = \"off\"\n";

const LOGIN: &str = "[[login]]\nname = \"shop\"\npath = \"/login\"\n";

struct Reloading {
    cert: TestCert,
    _shop: credgate::demo::Shop,
    shop: std::net::SocketAddr,
    path: std::path::PathBuf,
}

impl Reloading {
    async fn new() -> Self {
        let cert = TestCert::generate();
        let running = start_shop().await;
        let shop = running.addr();
        let path = cert.dir.path().join("credgate.toml");
        Self {
            cert,
            _shop: running,
            shop,
            path,
        }
    }

    /// Writes the config: the test server (trusting 127.0.0.1's forwarded
    /// addresses, with the admin token), then `tables`.
    fn write(&self, server_extra: &str, tables: &str) {
        let server = format!("{}\n{server_extra}", trusting_server_with_admin(&self.cert));
        let toml = format!(
            "{}\n{tables}\n",
            config_toml(&self.cert, self.shop, &server, "")
        );
        std::fs::write(&self.path, toml).unwrap();
    }

    fn client(&self) -> TestClient {
        TestClient::new(&self.cert.der, Version::Http1)
    }
}

/// `POST /admin/reload`: the status and the JSON answer.
async fn reload(proxy: &Process) -> (StatusCode, serde_json::Value) {
    let url = format!("http://{}/admin/reload", proxy.admin);
    let (status, body) = admin("POST", &url, Some(ADMIN_TOKEN)).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn failed_login(client: &TestClient, proxy: &Process, from: &str) -> StatusCode {
    let url = format!("https://127.0.0.1:{}/login", proxy.proxy.port());
    let request = form_login(url, from, "alice@example.com", "wrong");
    client.send(request).await.status
}

/// A SIGHUP that tightens the ip limit under steady load: from then on the
/// load is throttled, and not one request fails or goes unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_tightens_a_limit_under_load_without_losing_a_request() {
    let setup = Reloading::new().await;
    let loose = "[limits.ip]\nrate = \"1000/s\"\nburst = 1000\n";
    setup.write("", &format!("{LOGIN}{QUIET}{loose}"));
    let proxy = Process::serve(&setup.path);
    let client = Arc::new(setup.client());
    let url = format!("https://127.0.0.1:{}/login", proxy.proxy.port());
    let stop = Arc::new(AtomicBool::new(false));
    let reloaded = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (throttled_before, throttled_after) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, stop, reloaded) =
                (client.clone(), url.clone(), stop.clone(), reloaded.clone());
            let (sent, failed) = (sent.clone(), failed.clone());
            let (before, after) = (throttled_before.clone(), throttled_after.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    // Read before sending: a 429 counts as "after" only
                    // if the reload was already asked for.
                    let was_reloaded = reloaded.load(Relaxed);
                    let request = form_login(url.clone(), "203.0.113.7", "alice@example.com", "x");
                    sent.fetch_add(1, Relaxed);
                    match client.try_send(request).await.map(|a| a.status) {
                        Ok(StatusCode::TOO_MANY_REQUESTS) if was_reloaded => {
                            after.fetch_add(1, Relaxed);
                        }
                        Ok(StatusCode::TOO_MANY_REQUESTS) => {
                            before.fetch_add(1, Relaxed);
                        }
                        Ok(StatusCode::UNAUTHORIZED) => {}
                        Ok(_) | Err(_) => {
                            failed.fetch_add(1, Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let steady = eventually(Duration::from_secs(10), || sent.load(Relaxed) >= 40).await;
    assert!(steady, "the load never got going");

    let tight = "[limits.ip]\nrate = \"1/min\"\nburst = 3\n";
    setup.write("", &format!("{LOGIN}{QUIET}{tight}"));
    reloaded.store(true, Relaxed);
    proxy.signal(Signal::SIGHUP);
    let throttling = eventually(Duration::from_secs(10), || {
        throttled_after.load(Relaxed) >= 20
    })
    .await;
    let at_reload = sent.load(Relaxed);
    let more = eventually(Duration::from_secs(10), || {
        sent.load(Relaxed) >= at_reload + 40
    })
    .await;
    stop.store(true, Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(
        throttling && more,
        "the tighter limit never applied: {}",
        proxy.logs()
    );
    eprintln!(
        "sent {}, throttled after the reload {}",
        sent.load(Relaxed),
        throttled_after.load(Relaxed)
    );
    assert_eq!(
        throttled_before.load(Relaxed),
        0,
        "throttled before the reload"
    );
    assert_eq!(failed.load(Relaxed), 0, "lost or failed requests");
    let metrics = scrape(proxy.admin).await;
    let ok = [("result", "success")];
    assert_eq!(sample(&metrics, "credgate_config_reloads_total", &ok), 1.0);
    let logged = eventually(Duration::from_secs(10), || {
        proxy.logs().contains("configuration reloaded")
    });
    assert!(logged.await, "{}", proxy.logs());
}

/// A login route added by a reload is protected at once: before, its
/// failures pass through without limit; after, the route's limit applies
/// and its series is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_a_login_route_protects_it() {
    let setup = Reloading::new().await;
    let tight = "[limits.ip]\nrate = \"1/min\"\nburst = 2\n";
    setup.write("", &format!("{QUIET}{tight}"));
    let proxy = Process::serve(&setup.path);
    let client = setup.client();
    for _ in 0..5 {
        let status = failed_login(&client, &proxy, "203.0.113.8").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "not a login route yet");
    }

    setup.write("", &format!("{LOGIN}{QUIET}{tight}"));
    let (status, report) = reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["config"], "ok", "{report}");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(failed_login(&client, &proxy, "203.0.113.8").await);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let metrics = scrape(proxy.admin).await;
    let throttled = [("route", "shop"), ("decision", "throttle")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &throttled), 1.0);
}

/// A file that does not parse is refused whole, with where and why, counted,
/// and the running configuration keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_keeps_the_old_one_serving() {
    let setup = Reloading::new().await;
    let tight = "[limits.ip]\nrate = \"1/min\"\nburst = 1\n";
    setup.write("", &format!("{LOGIN}{QUIET}{tight}"));
    let proxy = Process::serve(&setup.path);
    let client = setup.client();

    // Valid TOML, a wrong type; and the limit it would have loosened.
    let bad = "[limits.ip]\nrate = \"1000/s\"\nburst = \"many\"\n";
    setup.write("", &format!("{LOGIN}{QUIET}{bad}"));
    let (status, report) = reload(&proxy).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
    let error = report["config"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("credgate.toml:") && error.contains("key `limits.ip.burst`"),
        "{report}"
    );
    assert_eq!(report["certificate"], "ok", "{report}");

    proxy.signal(Signal::SIGHUP);
    let metrics_say = |n: f64| {
        let admin = proxy.admin;
        async move {
            let failed = [("result", "failure")];
            sample(
                &scrape(admin).await,
                "credgate_config_reloads_total",
                &failed,
            ) == n
        }
    };
    let mut counted = false;
    for _ in 0..100 {
        if metrics_say(2.0).await {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "two refused reloads are not counted");
    let refused = eventually(Duration::from_secs(10), || {
        proxy.logs().contains("configuration reload refused")
    });
    assert!(refused.await, "{}", proxy.logs());
    // The old limit (burst 1) still holds.
    assert_eq!(
        failed_login(&client, &proxy, "203.0.113.9").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        failed_login(&client, &proxy, "203.0.113.9").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A new `listen` needs a restart: named in the log and the answer, not
/// applied, while the rest of the file is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_listen_address_is_reported_as_restart_needed() {
    let setup = Reloading::new().await;
    setup.write("", &format!("{LOGIN}{QUIET}"));
    let proxy = Process::serve(&setup.path);
    let client = setup.client();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere = taken.local_addr().unwrap();
    let moved = format!("{LOGIN}{QUIET}").replace(
        "[suspicion]",
        "[suspicion]\ndenylist = [\"203.0.113.10/32\"]",
    );
    setup.write("", &moved);
    let toml = std::fs::read_to_string(&setup.path).unwrap().replace(
        "\nlisten = \"127.0.0.1:0\"",
        &format!("\nlisten = \"{elsewhere}\""),
    );
    std::fs::write(&setup.path, toml).unwrap();

    let (status, report) = reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["restart_needed"],
        serde_json::json!(["server.listen"])
    );
    let logged = |text: &'static str| {
        let proxy = &proxy;
        eventually(Duration::from_secs(10), move || proxy.logs().contains(text))
    };
    assert!(
        logged("restart needed for: server.listen").await,
        "{}",
        proxy.logs()
    );
    // Still serving on the old address, with the new deny list applied.
    assert_eq!(
        failed_login(&client, &proxy, "203.0.113.11").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        failed_login(&client, &proxy, "203.0.113.10").await,
        StatusCode::FORBIDDEN
    );
}

/// `[log] level` changes without a restart: with the access log's target
/// off it is silent; reloaded at `info`, it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_log_level() {
    let setup = Reloading::new().await;
    let at = |level: &str| {
        let toml = std::fs::read_to_string(&setup.path).unwrap();
        let toml = toml.replace("level = \"debug\"", &format!("level = \"{level}\""));
        std::fs::write(&setup.path, toml).unwrap();
    };
    setup.write("", &format!("{LOGIN}{QUIET}"));
    at("info,credgate::access=off");
    let proxy = Process::serve(&setup.path);
    let client = setup.client();
    let access = "credgate::access";
    failed_login(&client, &proxy, "203.0.113.12").await;
    setup.write("", &format!("{LOGIN}{QUIET}"));
    at("info");
    let (status, report) = reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(!proxy.logs().contains(access), "{}", proxy.logs());
    failed_login(&client, &proxy, "203.0.113.12").await;
    let written = eventually(Duration::from_secs(10), || proxy.logs().contains(access)).await;
    assert!(written, "no access line at info: {}", proxy.logs());
}

/// With the limits in Redis, a reload's new limit applies to the counts
/// already there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_tightens_a_limit_kept_in_redis() {
    let redis = crate::support::redis::RedisServer::start();
    let setup = Reloading::new().await;
    let state = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    let limit = |burst: u32| format!("[limits.ip]\nrate = \"1/min\"\nburst = {burst}\n");
    setup.write("", &format!("{LOGIN}{QUIET}{state}{}", limit(10)));
    let proxy = Process::serve(&setup.path);
    let client = setup.client();
    for _ in 0..3 {
        let status = failed_login(&client, &proxy, "203.0.113.13").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(redis.keys() > 0, "the limits are not in redis");
    setup.write("", &format!("{LOGIN}{QUIET}{state}{}", limit(3)));
    let (status, report) = reload(&proxy).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report.get("restart_needed").is_none(), "{report}");
    assert_eq!(
        failed_login(&client, &proxy, "203.0.113.13").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
