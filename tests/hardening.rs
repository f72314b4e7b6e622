//! The proxy protects itself and the shop: ambiguous requests, slow clients,
//! idle connections and the connection cap.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::full;
use crate::support::*;

/// Reads until the peer closes; returns what it sent.
async fn read_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was not closed");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn ambiguous_http1_requests_are_refused_and_the_connection_closed() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let cases = [
        ("missing Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "duplicate Host",
            "GET / HTTP/1.1\r\nHost: shop.test\r\nHost: evil.test\r\n\r\n",
        ),
        (
            "other authority",
            "GET http://evil.test/ HTTP/1.1\r\nHost: shop.test\r\n\r\n",
        ),
        ("invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ];
    for (case, request) in cases {
        let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
        // A second, innocent request rides behind: it must not be served.
        let pipelined = format!("{request}GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n");
        tls.write_all(pipelined.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut tls).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{case}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{case}: {answer}");
    }
    assert_eq!(shop.requests(), 0, "no ambiguous request reached the shop");
    let metrics = scrape(proxy.addrs.admin).await;
    let rejected = [("route", "passthrough"), ("decision", "reject")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &rejected), 4.0);
}

#[tokio::test]
async fn http2_authority_differing_from_host_is_refused() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let client = TestClient::new(&cert.der, Version::Http2);
    let request = Request::get(proxy.url("/"))
        .header("host", "evil.test")
        .body(full(""))
        .unwrap();
    let answer = client.send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(shop.requests(), 0);
}

#[tokio::test]
async fn slow_headers_are_cut_off_after_header_read_timeout() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = r#"header_read_timeout = "1s""#;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), server, "")).await;
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    let started = Instant::now();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Slow: ")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest)).await;
    let elapsed = started.elapsed();
    assert!(closed.is_ok(), "a slow client kept its connection");
    assert!(
        elapsed >= Duration::from_millis(900),
        "cut off too early: {elapsed:?}"
    );
    assert_eq!(shop.requests(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = r#"idle_timeout = "1s""#;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), server, "")).await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[alpn]).await;
        if alpn == b"h2" {
            // The client preface and an empty SETTINGS frame, then silence.
            tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                .await
                .unwrap();
        }
        let started = Instant::now();
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "idle {alpn:?} connection stayed open");
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "max_connections = 2", "")).await;
    let first = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    let _second = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;

    let addr = proxy.addrs.proxy;
    let der = cert.der.clone();
    let third = tokio::spawn(async move { raw_tls(addr, &der, &[b"http/1.1"]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served at max_connections = 2"
    );

    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), third).await;
    assert!(third.is_ok(), "the freed slot was not reused");
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = "max_header_size = \"8KiB\"\nmax_headers = 10";
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), server, "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);

    let big = Request::get(proxy.url("/"))
        .header("x-big", "a".repeat(16 * 1024))
        .body(full(""))
        .unwrap();
    let status = client.try_send(big).await.map(|a| a.status);
    assert!(
        matches!(
            status,
            Ok(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE) | Err(_)
        ),
        "{status:?}"
    );

    let mut many = Request::get(proxy.url("/"));
    for i in 0..20 {
        many = many.header(format!("x-h{i}"), "1");
    }
    let status = client
        .try_send(many.body(full("")).unwrap())
        .await
        .map(|a| a.status);
    assert!(
        matches!(
            status,
            Ok(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE) | Err(_)
        ),
        "{status:?}"
    );
    assert_eq!(shop.requests(), 0);
}
