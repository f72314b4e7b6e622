//! The admin listener: metrics, liveness, readiness.

use http::StatusCode;

use crate::support::client;
use crate::support::*;

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_name_every_series() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    assert_eq!(client.get(&proxy.url("/")).await.status, StatusCode::OK);

    let scrape = scrape(proxy.addrs.admin).await;
    for name in [
        "credgate_requests_total",
        "credgate_request_duration_seconds",
        "credgate_upstream_duration_seconds",
        "credgate_upstream_errors_total",
        "credgate_tls_handshake_errors_total",
        "credgate_tls_certificate_reloads_total",
        "credgate_open_connections",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name} is missing from /metrics"
        );
    }
    for sample in &scrape.samples {
        for (label, value) in sample.labels.iter() {
            assert!(!value.contains("127.0.0.1"), "{label} carries an address");
        }
    }
}

#[tokio::test]
async fn healthz_is_live_and_readyz_follows_the_upstream() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let ready = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    assert_eq!(get(&ready.admin_url("/healthz")).await.0, StatusCode::OK);
    assert_eq!(get(&ready.admin_url("/readyz")).await.0, StatusCode::OK);
    assert_eq!(
        get(&ready.admin_url("/nope")).await.0,
        StatusCode::NOT_FOUND
    );

    let closed = closed_port();
    let unready = start_proxy(&config_toml(&cert, closed.addr, "", "")).await;
    assert_eq!(get(&unready.admin_url("/healthz")).await.0, StatusCode::OK);
    let (status, body) = get(&unready.admin_url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("upstream"));
}

#[tokio::test]
async fn failed_tls_handshakes_are_counted() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addrs.proxy)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut sink).await;
    let scrape = scrape(proxy.addrs.admin).await;
    let errors = sample(&scrape, "credgate_tls_handshake_errors_total", &[]);
    assert_eq!(errors, 1.0);
}

const TOKEN: &str = ADMIN_TOKEN;

/// A proxy whose admin API takes `TOKEN`.
async fn proxy_with_admin_token(cert: &TestCert, upstream: std::net::SocketAddr) -> RunningProxy {
    let token_file = cert.dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let server = format!("admin_token_file = \"{}\"", token_file.display());
    start_proxy(&config_toml(cert, upstream, &server, "")).await
}

#[tokio::test]
async fn the_admin_api_refuses_a_missing_or_wrong_token() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = proxy_with_admin_token(&cert, shop.addr()).await;
    let url = proxy.admin_url("/admin/reload");
    assert_eq!(
        client::admin("POST", &url, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let wrong = client::admin("POST", &url, Some("test-admin-token-0123456788")).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let (status, body) = client::admin("POST", &url, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"certificate\":\"ok\""), "{body}");
    let unknown = client::admin("GET", &proxy.admin_url("/admin/nope"), Some(TOKEN)).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);

    let scrape = scrape(proxy.addrs.admin).await;
    let ok = [("result", "success")];
    assert_eq!(
        sample(&scrape, "credgate_tls_certificate_reloads_total", &ok),
        1.0
    );
}

#[tokio::test]
async fn without_a_token_file_the_admin_api_is_off() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let (status, body) =
        client::admin("POST", &proxy.admin_url("/admin/reload"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("admin_token_file"));
}
