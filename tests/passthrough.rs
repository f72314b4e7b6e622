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
}

/// Without the CA, the inner proxy's certificate is not trusted: 502, and
/// the reason logged is the certificate, not any other failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_with_an_unknown_ca_fails_on_its_certificate() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let inner = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let other = TestCert::generate();
    let ca_file = format!("ca_file = \"{}\"", other.cert_path().display());
    let toml = config_toml(&other, inner.addrs.proxy, "", &ca_file)
        .replace("url = \"http://", "url = \"https://");
    let path = other.dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    let mut untrusting = crate::support::binary::Process::serve(&path);
    let client = TestClient::new(&other.der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/", untrusting.proxy.port());
    assert_eq!(client.get(&url).await.status, StatusCode::BAD_GATEWAY);
    let metrics = scrape(untrusting.admin).await;
    let connect = [("kind", "connect")];
    assert_eq!(
        sample(&metrics, "credgate_upstream_errors_total", &connect),
        1.0
    );
    assert_eq!(shop.requests(), 0);
    let (_, logs) = untrusting.stop();
    let failure = logs
        .lines()
        .find(|l| l.contains("upstream failed"))
        .unwrap_or_else(|| panic!("no upstream failure logged: {logs}"));
    assert!(
        // UnknownIssuer or BadSignature: rcgen names every test CA alike.
        failure.contains("invalid peer certificate"),
        "{failure}"
    );
}

/// `listen_plain`: the same proxy without TLS, for use behind a
/// TLS-terminating load balancer; logins on it are inspected all the same.
#[tokio::test]
async fn the_cleartext_listener_serves_and_inspects() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n",
        config_toml(&cert, shop.addr(), "listen_plain = \"127.0.0.1:0\"", "")
    );
    let proxy = start_proxy(&toml).await;
    let plain = proxy.addrs.plain.expect("a cleartext listener");
    let (status, body) = get(&format!("http://{plain}/headers")).await;
    assert_eq!(status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["x-forwarded-proto"][0], "http");

    let form = "username=alice&password=a&password=b";
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {plain}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let answer = exchange(plain, &request).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(shop.requests(), 1, "only /headers reached the shop");
}

/// Writes `request` on a new TCP connection; what came back before close.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer));
    read.await.expect("no answer within 10 s").unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// An upstream that answers the first request on each connection and
/// closes the connection on reading the second: a POST on a pooled
/// connection fails after it was sent. credgate answers 502 and never
/// sends it again.
#[tokio::test]
async fn a_failed_request_is_never_retried() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let posts = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = posts.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut answered = false;
                while let Ok(n) = tcp.read(&mut buf).await {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if n == 0 || text.starts_with("POST") {
                        seen.fetch_add(usize::from(n > 0), Ordering::SeqCst);
                        return; // closed without an answer
                    }
                    if !answered && text.contains("\r\n\r\n") {
                        answered = true;
                        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        tcp.write_all(ok.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    let cert = TestCert::generate();
    let proxy = start_proxy(&config_toml(&cert, upstream, "", "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    assert_eq!(client.get(&proxy.url("/")).await.status, StatusCode::OK);
    let order = Request::post(proxy.url("/orders"))
        .body(full("pay=1"))
        .unwrap();
    assert_eq!(client.send(order).await.status, StatusCode::BAD_GATEWAY);
    // A retry would have happened before the 502 was sent.
    assert_eq!(posts.load(Ordering::SeqCst), 1, "the POST was sent again");
}

/// A TLS client that offers no ALPN (wrk, scripts, old libraries) speaks
/// HTTP/1.1: HTTP/2 over TLS is negotiated by ALPN or not at all (RFC 9113,
/// section 3.3), so an HTTP/2 preface without it is a malformed HTTP/1.1
/// request, refused before the shop.
#[tokio::test]
async fn without_alpn_tls_is_http1_and_an_http2_preface_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let read_all = |mut tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>| async move {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer));
        let _ = read.await.expect("no answer within 10 s");
        String::from_utf8_lossy(&answer).into_owned()
    };

    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[]).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Demo shop"));

    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[]).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let answer = read_all(tls).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer:?}"
    );
    assert_eq!(shop.requests(), 1, "only the HTTP/1.1 GET reached the shop");
}
