//! The real binary's life: certificate reload on SIGHUP, graceful shutdown on
//! SIGTERM, and flat memory while large bodies stream through.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;

use crate::support::binary::Process;
use crate::support::client;
use crate::support::*;
use credgate::demo::Shop;
use credgate::leaked::FilterKind;

fn write_config(cert: &TestCert, toml: &str) -> std::path::PathBuf {
    let path = cert.dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// An HTTP/1.1 connection that trusts only `ca_der`; kept open by the caller.
async fn connect_http1(
    addr: std::net::SocketAddr,
    ca_der: &[u8],
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tls = raw_tls(addr, ca_der, &[b"http/1.1"]).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get_home(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
) -> StatusCode {
    let request = Request::get("/")
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_open_connections() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let config = write_config(&cert, &config_toml(&cert, shop.addr(), "", ""));
    let proxy = Process::serve(&config);

    let mut open = connect_http1(proxy.proxy, &cert.der).await;
    assert_eq!(get_home(&mut open).await, StatusCode::OK);

    let new_der = TestCert::write_new(&cert.cert_path(), &cert.key_path());
    proxy.signal(Signal::SIGHUP);
    let addr = proxy.proxy;
    let mut fresh = None;
    for _ in 0..100 {
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client::tls_config(
            &new_der,
            &[b"http/1.1"],
        )));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        if let Ok(tls) = connector.connect(name, tcp).await {
            fresh = Some(tls);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fresh.is_some(),
        "new handshakes never presented the new certificate"
    );

    assert_eq!(
        get_home(&mut open).await,
        StatusCode::OK,
        "the open connection broke"
    );
    let mut fresh = connect_http1(addr, &new_der).await;
    assert_eq!(get_home(&mut fresh).await, StatusCode::OK);

    let metrics = scrape(proxy.admin).await;
    let ok = [("result", "success")];
    assert_eq!(
        sample(&metrics, "credgate_tls_certificate_reloads_total", &ok),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_on_sighup_keeps_the_old_one() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let config = write_config(&cert, &config_toml(&cert, shop.addr(), "", ""));
    let proxy = Process::serve(&config);
    std::fs::write(cert.cert_path(), "garbage").unwrap();
    proxy.signal(Signal::SIGHUP);
    let failed = [("result", "failure")];
    let mut reloads = 0.0;
    for _ in 0..100 {
        reloads = sample(
            &scrape(proxy.admin).await,
            "credgate_tls_certificate_reloads_total",
            &failed,
        );
        if reloads > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reloads, 1.0);
    let mut sender = connect_http1(proxy.proxy, &cert.der).await;
    assert_eq!(get_home(&mut sender).await, StatusCode::OK);
    assert!(proxy.logs().contains("keeping the old one"));
}

/// Signals `signal` while a slow request is in flight at the shop: the
/// listener closes, the request finishes, the process exits 0.
async fn drains_on(signal: Signal) {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), r#"shutdown_grace = "10s""#, "");
    let proxy = Process::serve(&write_config(&cert, &toml));
    drains(proxy, &cert.der, &shop, signal).await;
}

/// The drain of `drains_on`, on a proxy already running whose certificate
/// `ca_der` signs.
async fn drains(mut proxy: Process, ca_der: &[u8], shop: &Shop, signal: Signal) {
    let client = TestClient::new(ca_der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/slow?ms=1500", proxy.proxy.port());
    let before = shop.requests();
    let in_flight = tokio::spawn(async move { client.get(&url).await });
    let arrived = eventually(Duration::from_secs(10), || shop.requests() == before + 1).await;
    assert!(arrived, "the request never reached the shop");

    proxy.signal(signal);
    let addr = proxy.proxy;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after {signal}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!in_flight.is_finished(), "the slow request ended early");

    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "finally\n");
    let status = proxy.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_zero() {
    drains_on(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_lets_the_in_flight_request_finish_then_exits_zero() {
    drains_on(Signal::SIGINT).await;
}

/// On one CPU the proxy runs on a current-thread runtime (and says so):
/// it still inspects logins, reloads on SIGHUP and drains on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_cpu_a_current_thread_runtime_serves_reloads_and_drains() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let pairs = build_filter(
        cert.dir.path(),
        "pairs.cgf",
        FilterKind::Pairs,
        &["leaky@example.com:Leaked-Pa1r-secret"],
    );
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n[leaked]\npairs_filter = \"{}\"\n",
        config_toml(&cert, shop.addr(), r#"shutdown_grace = "10s""#, ""),
        pairs.display()
    );
    let proxy = Process::serve_on_one_cpu(&write_config(&cert, &toml));
    let listening = || {
        events(&proxy.logs())
            .into_iter()
            .find(|e| e["message"] == "listening")
    };
    // The line that reported the addresses may still be on its way to the
    // log buffer.
    assert!(eventually(Duration::from_secs(5), || listening().is_some()).await);
    let listening = listening().unwrap();
    assert_eq!(listening["runtime"], "CurrentThread", "{listening}");
    assert_eq!(listening["workers"], 1, "{listening}");

    let client = TestClient::new(&cert.der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/login", proxy.proxy.port());
    // The address header is an untrusted peer's here, and ignored.
    let login = |user, password| client.send(form_login(url.clone(), "192.0.2.1", user, password));
    let right = login("alice@example.com", "wonderland-42").await;
    assert_eq!(right.status, StatusCode::OK);
    let leaked = login("leaky@example.com", "Leaked-Pa1r-secret").await;
    assert_eq!(leaked.status, StatusCode::FORBIDDEN);

    let new_der = TestCert::write_new(&cert.cert_path(), &cert.key_path());
    proxy.signal(Signal::SIGHUP);
    let reloaded = eventually(Duration::from_secs(10), || {
        proxy.logs().contains("TLS certificate reloaded")
    })
    .await;
    assert!(reloaded, "{}", proxy.logs());

    drains(proxy, &new_der, &shop, Signal::SIGTERM).await;
}

/// A request longer than `shutdown_grace` is cut when the grace runs out:
/// the process exits 0 after about the grace, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_shutdown_grace_is_cut_and_the_process_exits() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), r#"shutdown_grace = "1s""#, "");
    let mut proxy = Process::serve(&write_config(&cert, &toml));
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/slow?ms=20000", proxy.proxy.port());
    let in_flight = tokio::spawn(async move {
        let request = Request::get(url).body(client::empty()).unwrap();
        client.try_send(request).await
    });
    let arrived = eventually(Duration::from_secs(10), || shop.requests() == 1).await;
    assert!(arrived, "the request never reached the shop");

    let signalled = std::time::Instant::now();
    let (status, logs) = proxy.stop();
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM with a 1 s grace"
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the cut request was answered"
    );
    assert!(logs.contains("shutdown grace period over"), "{logs}");
}

/// 200 MB up and 200 MB down through the real binary: the proxy's peak
/// resident memory grows by less than the README's figure (32 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_with_flat_memory() {
    const SIZE: usize = 200 * 1024 * 1024;
    const CHUNK: usize = 1024 * 1024;
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), "", "").replace("\"debug\"", "\"info\"");
    let proxy = Process::serve(&write_config(&cert, &toml));
    let client = TestClient::new(&cert.der, Version::Http1);
    let base = format!("https://127.0.0.1:{}", proxy.proxy.port());
    assert_eq!(client.get(&format!("{base}/")).await.status, StatusCode::OK);
    let started = proxy.peak_rss();

    let chunks =
        (0..SIZE / CHUNK).map(|_| Ok(hyper::body::Frame::data(Bytes::from(vec![1u8; CHUNK]))));
    let body = http_body_util::StreamBody::new(IterStream(chunks));
    let upload = Request::post(format!("{base}/upload"))
        .body(body.boxed())
        .unwrap();
    let answer = client.send(upload).await;
    assert_eq!(answer.json()["bytes"], SIZE as u64);

    let download = client.get(&format!("{base}/download?bytes={SIZE}")).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body.len(), SIZE);

    let peak = proxy.peak_rss();
    let growth = peak - started;
    eprintln!(
        "proxy peak RSS: {} KiB after one request, {} KiB after 400 MiB of bodies",
        started / 1024,
        peak / 1024
    );
    assert!(
        growth < 32 * 1024 * 1024,
        "400 MiB of bodies raised the peak RSS by {} MiB",
        growth / (1024 * 1024)
    );
}

/// A stream over prepared frames.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// A run at `trace` level, with logins of every kind: no password used
/// appears anywhere in the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_appears_in_trace_logs() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    // Filters in which one pair and one password are leaked, so that the run
    // covers blocked, annotated, clean and refused logins, and a ban.
    let pairs = build_filter(
        cert.dir.path(),
        "pairs.cgf",
        FilterKind::Pairs,
        &["leaky@example.com:Leaked-Pa1r-secret"],
    );
    let leaked_passwords = build_filter(
        cert.dir.path(),
        "passwords.cgf",
        FilterKind::Passwords,
        &["Leaked-Passw0rd-alone"],
    );
    let tables = format!(
        "[[login]]\npath = \"/login\"\n[[login]]\npath = \"/api/login\"\nformat = \"json\"\n\
         [leaked]\npairs_filter = \"{}\"\npasswords_filter = \"{}\"\n\
         [suspicion]\nleaked_pair_hits = 1\n",
        pairs.display(),
        leaked_passwords.display()
    );
    let toml = config_with(&cert, shop.addr(), &tables).replace("\"debug\"", "\"trace\"");
    let mut proxy = Process::serve(&write_config(&cert, &toml));
    let client = TestClient::new(&cert.der, Version::Http2);
    let form = "application/x-www-form-urlencoded";
    let passwords = [
        "wonderland-42",
        "Pa55-not-logged",
        "dupl1cate-secret",
        "s3cret-in-json",
        "Leaked-Pa1r-secret",
        "Leaked-Passw0rd-alone",
    ];
    let bodies = [
        (
            form,
            format!("username=alice%40example.com&password={}", passwords[0]),
        ),
        (form, format!("username=bob&password={}", passwords[1])),
        (
            form,
            format!("username=a&password={0}&password={0}", passwords[2]),
        ),
        (
            "application/json",
            format!(r#"{{"username":"carol","password":"{}"}}"#, passwords[3]),
        ),
        (
            form,
            format!("username=x%40example.com&password={}", passwords[5]),
        ),
        // One leaked pair bans the client (`leaked_pair_hits = 1`); the
        // next attempt is refused by the ban.
        (
            form,
            format!("username=leaky%40example.com&password={}", passwords[4]),
        ),
        (
            form,
            format!("username=leaky%40example.com&password={}", passwords[4]),
        ),
    ];
    // Clean and right, clean and wrong, a duplicate field, JSON (inspected
    // and forwarded: the demo shop has no /api/login), a leaked password
    // (annotated, then wrong), a leaked pair (blocked, and a ban), the
    // banned client.
    let expected = [200, 401, 400, 404, 401, 403, 403];
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for (i, (content_type, body)) in bodies.into_iter().enumerate() {
        let path = if i == 3 { "/api/login" } else { "/login" };
        let url = format!("https://127.0.0.1:{}{path}", proxy.proxy.port());
        let request = Request::post(url)
            .header("content-type", content_type)
            .body(crate::support::client::full(body))
            .unwrap();
        let answer = client.send(request).await;
        statuses.push(answer.status.as_u16());
        retry_after.push(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(statuses, expected);
    assert!(
        retry_after[6] && !retry_after[5],
        "the last refusal is the ban's"
    );
    assert_eq!(shop.requests(), 4, "clean and annotated logins only");
    let (_, logs) = proxy.stop();
    assert!(
        logs.contains("client banned"),
        "the run did not reach a ban"
    );
    assert!(
        logs.lines().count() > 20,
        "trace logging did not run: {logs}"
    );
    for password in passwords {
        assert!(!logs.contains(password), "a password was logged");
    }
    // Not percent-encoded either.
    assert!(
        !logs.contains("wonderland"),
        "a password fragment was logged"
    );
}

/// The log lines of a run, as JSON objects.
fn events(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// At `debug`, one line per request with its fields; a failed upstream
/// request is logged at `warn`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_once_and_upstream_failures_at_warn() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), "", r#"request_timeout = "300ms""#);
    let mut proxy = Process::serve(&write_config(&cert, &toml));
    let client = TestClient::new(&cert.der, Version::Http1);
    let base = format!("https://127.0.0.1:{}", proxy.proxy.port());
    assert_eq!(client.get(&format!("{base}/")).await.status, StatusCode::OK);
    let slow = client.get(&format!("{base}/slow?ms=3000")).await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    let (_, logs) = proxy.stop();
    let events = events(&logs);

    let requests: Vec<_> = events
        .iter()
        .filter(|e| e["target"] == "credgate::access")
        .collect();
    assert_eq!(requests.len(), 2, "{logs}");
    for (event, path, status, decision) in [
        (requests[0], "/", 200, "allow"),
        (requests[1], "/slow?ms=3000", 504, "upstream_error"),
    ] {
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["client"], "127.0.0.1");
        assert_eq!(event["method"], "GET");
        assert_eq!(event["path"], path);
        assert_eq!(event["status"], status);
        assert_eq!(event["route"], "passthrough");
        assert_eq!(event["decision"], decision);
        assert!(event["total_seconds"].is_f64(), "{event}");
    }
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["message"] == "upstream failed")
        .collect();
    assert_eq!(failed.len(), 1, "{logs}");
    assert_eq!(failed[0]["level"], "WARN");
    assert_eq!(failed[0]["kind"], "timeout");
}

/// `[log] format = "text"`: human lines, not JSON, with the same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_are_plain_lines() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), "", "").replace("\"json\"", "\"text\"");
    let mut proxy = Process::serve(&write_config(&cert, &toml));
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/", proxy.proxy.port());
    assert_eq!(client.get(&url).await.status, StatusCode::OK);
    let (_, logs) = proxy.stop();
    assert!(logs.lines().count() >= 3, "{logs}");
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "a JSON line: {line}"
        );
    }
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&logs, "");
    assert!(
        plain.contains(" INFO ") && plain.contains(" listening "),
        "{plain}"
    );
    let request = plain
        .lines()
        .find(|l| l.contains("credgate::access"))
        .expect("an access line");
    assert!(
        request.contains("INFO") && request.contains("status=200"),
        "{request}"
    );
}
