//! Ordinary traffic passes through, over HTTP/1.1 and HTTP/2, with the
//! forwarding rules applied.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use crate::support::client::{full, sample, Answer};
use crate::support::*;

#[tokio::test]
async fn get_and_post_pass_through_over_http1_and_http2() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    for (version, wire) in [
        (Version::Http1, http::Version::HTTP_11),
        (Version::Http2, http::Version::HTTP_2),
    ] {
        let client = TestClient::new(&cert.der, version);
        let home = client.get(&proxy.url("/")).await;
        assert_eq!(home.status, StatusCode::OK);
        assert_eq!(home.version, wire);
        assert!(home.body.contains("Demo shop"));

        let login = Request::post(proxy.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full("username=alice%40example.com&password=wonderland-42"))
            .unwrap();
        let answer = client.send(login).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{version:?}: {}",
            answer.body
        );
        assert!(answer.body.contains("welcome"));
    }
    let metrics = scrape(proxy.addrs.admin).await;
    let allowed = [("route", "passthrough"), ("decision", "allow")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &allowed), 4.0);
}

#[tokio::test]
async fn headers_are_forwarded_and_hop_by_hop_ones_stripped() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let request = Request::get(proxy.url("/headers"))
        .header("x-shop-visible", "yes")
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .body(full(""))
        .unwrap();
    let seen = client.send(request).await.json();
    assert_eq!(seen["x-shop-visible"][0], "yes");
    for hop in [
        "connection",
        "x-private-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(seen.get(hop).is_none(), "{hop} reached the shop: {seen}");
    }
    let port = proxy.addrs.proxy.port();
    assert_eq!(seen["host"][0], format!("127.0.0.1:{port}"), "Host is kept");
    assert_eq!(seen["x-forwarded-proto"][0], "https");
    assert_eq!(
        seen["forwarded"][0],
        format!("for=127.0.0.1;host=\"127.0.0.1:{port}\";proto=https")
    );

    // Over HTTP/2 the host arrives as :authority and leaves as Host.
    let h2 = TestClient::new(&cert.der, Version::Http2);
    let seen = h2.get(&proxy.url("/headers")).await.json();
    assert_eq!(seen["host"][0], format!("127.0.0.1:{port}"));
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_peers() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let untrusting = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let trusting = start_proxy(&config_toml(
        &cert,
        shop.addr(),
        r#"trusted_proxies = ["127.0.0.0/8"]"#,
        "",
    ))
    .await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let forged = |url: String| {
        Request::get(url)
            .header("x-forwarded-for", "198.51.100.7")
            .header("x-forwarded-proto", "gopher")
            .body(full(""))
            .unwrap()
    };

    let seen = client.send(forged(untrusting.url("/headers"))).await.json();
    assert_eq!(seen["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(seen["x-forwarded-proto"][0], "https");

    let seen = client.send(forged(trusting.url("/headers"))).await.json();
    assert_eq!(
        seen["x-forwarded-for"],
        serde_json::json!(["198.51.100.7, 127.0.0.1"])
    );
    assert_eq!(
        seen["x-forwarded-proto"][0], "gopher",
        "a trusted proxy's proto is kept"
    );
}

#[tokio::test]
async fn an_upload_streams_to_the_shop_before_it_ends() {
    const CHUNK: usize = 256 * 1024;
    const TOTAL_CHUNKS: usize = 128; // 32 MiB
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let body = http_body_util::StreamBody::new(ReceiverStream(rx)).boxed();
    let upload = Request::post(proxy.url("/upload")).body(body).unwrap();
    let response = tokio::spawn(async move { client.send(upload).await });

    // Half the body is sent; the shop must already be receiving it while the
    // client still holds the rest back. A buffering proxy would show 0 here.
    for _ in 0..TOTAL_CHUNKS / 2 {
        tx.send(Bytes::from(vec![7u8; CHUNK])).await.unwrap();
    }
    let streaming = eventually(Duration::from_secs(10), || {
        shop.uploaded_bytes() >= (CHUNK * TOTAL_CHUNKS / 4) as u64
    })
    .await;
    assert!(streaming, "the shop got {} bytes", shop.uploaded_bytes());
    assert!(shop.uploaded_bytes() < (CHUNK * TOTAL_CHUNKS) as u64);

    for _ in 0..TOTAL_CHUNKS / 2 {
        tx.send(Bytes::from(vec![7u8; CHUNK])).await.unwrap();
    }
    drop(tx);
    let answer: Answer = response.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["bytes"], (CHUNK * TOTAL_CHUNKS) as u64);
}

/// A body from a channel of chunks.
struct ReceiverStream(tokio::sync::mpsc::Receiver<Bytes>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    let cert = TestCert::generate();
    let closed = closed_port();
    let down = start_proxy(&config_toml(&cert, closed.addr, "", "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let answer = client.get(&down.url("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let metrics = scrape(down.addrs.admin).await;
    let connect = [("kind", "connect")];
    assert_eq!(
        sample(&metrics, "credgate_upstream_errors_total", &connect),
        1.0
    );
    let errors = [("route", "passthrough"), ("decision", "upstream_error")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &errors), 1.0);

    let shop = start_shop().await;
    let slow = start_proxy(&config_toml(
        &cert,
        shop.addr(),
        "",
        r#"request_timeout = "300ms""#,
    ))
    .await;
    let answer = client.get(&slow.url("/slow?ms=3000")).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    let fast = client.get(&slow.url("/slow?ms=10")).await;
    assert_eq!(fast.status, StatusCode::OK);
    let metrics = scrape(slow.addrs.admin).await;
    let timeout = [("kind", "timeout")];
    assert_eq!(
        sample(&metrics, "credgate_upstream_errors_total", &timeout),
        1.0
    );
    assert_eq!(
        sample(&metrics, "credgate_upstream_errors_total", &connect),
        0.0
    );
}

/// credgate in front of credgate: the outer one reaches an `https://`
/// upstream, trusting it through `ca_file`.
#[tokio::test]
async fn an_https_upstream_is_verified_with_ca_file() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let inner = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let ca_file = format!("ca_file = \"{}\"", cert.cert_path().display());
    let outer_toml = config_toml(&cert, inner.addrs.proxy, "", &ca_file)
        .replace("url = \"http://", "url = \"https://");
    let outer = start_proxy(&outer_toml).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let seen = client.get(&outer.url("/headers")).await.json();
    assert_eq!(seen["x-forwarded-proto"][0], "https");

    // Without the CA, the inner proxy's certificate is not trusted: 502.
    let other = TestCert::generate();
    let ca_file = format!("ca_file = \"{}\"", other.cert_path().display());
    let untrusting = start_proxy(
        &config_toml(&cert, inner.addrs.proxy, "", &ca_file)
            .replace("url = \"http://", "url = \"https://"),
    )
    .await;
    let answer = client.get(&untrusting.url("/")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
}
