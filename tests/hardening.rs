//! The proxy protects itself and the shop: ambiguous requests, slow clients,
//! idle connections and the connection cap.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{self, full, read_to_close};
use crate::support::*;

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

/// A TLS handshake that may fail (the fixture's `raw_tls` panics).
async fn try_tls(
    addr: std::net::SocketAddr,
    ca_der: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = client::tls_config(ca_der, &[b"http/1.1"]);
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

async fn open_connections(admin: std::net::SocketAddr) -> f64 {
    sample(&scrape(admin).await, "credgate_open_connections", &[])
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "max_connections = 2", "")).await;
    let first = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    let _second = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    let admin = proxy.addrs.admin;
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            open_connections(admin).await == 2.0
        })
        .await
    );

    let addr = proxy.addrs.proxy;
    let der = cert.der.clone();
    let mut third = tokio::spawn(async move { try_tls(addr, &der).await });
    // While the cap is reached, the third handshake is not answered, and
    // the gauge never passes the cap.
    let waiting = Instant::now() + Duration::from_millis(500);
    while Instant::now() < waiting {
        assert!(
            !third.is_finished(),
            "a third connection was served at max_connections = 2"
        );
        assert_eq!(open_connections(admin).await, 2.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), &mut third)
        .await
        .expect("the freed slot was not reused")
        .unwrap();
    let mut third = third.expect("the third TLS handshake failed");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Polls an async `condition` every 20 ms until it holds or `limit` passes.
async fn eventually_async<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn oversized_headers_are_refused_with_431() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = "max_header_size = \"8KiB\"\nmax_headers = 10";
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), server, "")).await;
    let client = TestClient::new(&cert.der, Version::Http1);

    let big = Request::get(proxy.url("/"))
        .header("x-big", "a".repeat(16 * 1024))
        .body(full(""))
        .unwrap();
    let answer = client.try_send(big).await.expect("an answer");
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    let mut many = Request::get(proxy.url("/"));
    for i in 0..20 {
        many = many.header(format!("x-h{i}"), "1");
    }
    let answer = client
        .try_send(many.body(full("")).unwrap())
        .await
        .expect("an answer");
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(shop.requests(), 0);
}

#[tokio::test]
async fn a_client_silent_after_connecting_is_cut_off_at_the_tls_handshake_deadline() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = r#"tls_handshake_timeout = "1s""#;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), server, "")).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addrs.proxy)
        .await
        .unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a silent client kept its connection");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "cut off too early: {elapsed:?}"
    );
    let metrics = scrape(proxy.addrs.admin).await;
    assert_eq!(
        sample(&metrics, "credgate_tls_handshake_errors_total", &[]),
        1.0
    );
}

/// A client that would send early data: its first session gives it a
/// ticket and the second resumes with it, but the ticket never permits early
/// data (a login must not be replayable), so none is offered.
#[tokio::test]
async fn resumed_sessions_get_no_0rtt() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let mut config = client::tls_config(&cert.der, &[b"http/1.1"]);
    config.enable_early_data = true;
    let config = std::sync::Arc::new(config);
    let addr = proxy.addrs.proxy;
    let sessions = tokio::task::spawn_blocking(move || {
        (0..2)
            .map(|_| early_data_session(config.clone(), addr))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    use rustls::HandshakeKind::{Full, Resumed};
    assert_eq!(
        sessions,
        [(false, Some(Full), false), (false, Some(Resumed), false)],
        "(early data offered, handshake, early data accepted)"
    );
    assert_eq!(shop.requests(), 2);
}

/// One GET over a blocking rustls connection: whether the client could
/// offer early data, the handshake kind, whether early data was accepted.
fn early_data_session(
    config: std::sync::Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
) -> (bool, Option<rustls::HandshakeKind>, bool) {
    use std::io::{Read, Write};
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(config, name).unwrap();
    let offered = connection.early_data().is_some();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::Stream::new(&mut connection, &mut tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    (
        offered,
        connection.handshake_kind(),
        connection.is_early_data_accepted(),
    )
}

/// A raw HTTP/2 frame: type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;

/// The HPACK block of `GET path` on `127.0.0.1` over https: static-table
/// entries and literals without indexing, no Huffman.
fn get_headers(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x04, path.len() as u8];
    block.extend(path.as_bytes());
    block.extend([0x01, 9]);
    block.extend(b"127.0.0.1");
    block
}

/// An HTTP/2 connection after the client preface and an empty SETTINGS.
async fn h2_connection(
    proxy: &RunningProxy,
    cert: &TestCert,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"h2"]).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tls.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    tls
}

/// The next frame: type, flags, stream id, payload; None once closed.
async fn read_frame(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head)).await;
    read.expect("no frame within 10 s").ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], id, payload))
}

/// The server announces `h2_max_concurrent_streams` and refuses a stream
/// beyond it, which never reaches the shop.
#[tokio::test]
async fn http2_streams_beyond_the_cap_are_refused() {
    const CAP: u32 = 3;
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = format!("h2_max_concurrent_streams = {CAP}");
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), &server, "")).await;
    let mut tls = h2_connection(&proxy, &cert).await;
    let settings = loop {
        let (kind, flags, _, payload) = read_frame(&mut tls).await.expect("server SETTINGS");
        if kind == SETTINGS && flags & 1 == 0 {
            break payload;
        }
    };
    let announced = settings
        .chunks(6)
        .find(|p| p[..2] == [0, 3])
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(announced, Some(CAP), "SETTINGS_MAX_CONCURRENT_STREAMS");
    tls.write_all(&frame(SETTINGS, 1, 0, &[])).await.unwrap();

    // CAP + 1 slow requests at once: the last stream is refused.
    let block = get_headers("/slow?ms=1000");
    for i in 0..=CAP {
        let headers = frame(HEADERS, 0x5, 2 * i + 1, &block);
        tls.write_all(&headers).await.unwrap();
    }
    let last = 2 * CAP + 1;
    let refused = loop {
        let (kind, _, id, payload) = read_frame(&mut tls).await.expect("an answer");
        if kind == RST_STREAM && id == last {
            break u32::from_be_bytes(payload[..4].try_into().unwrap());
        }
        assert!(kind != GOAWAY, "the connection was closed instead");
    };
    assert_eq!(refused, 0x7, "REFUSED_STREAM");
    let served = eventually(Duration::from_secs(5), || shop.requests() == u64::from(CAP)).await;
    assert!(served, "{} requests reached the shop", shop.requests());
}

/// CVE-2023-44487: streams opened and reset at once, many times over. The
/// connection is closed with ENHANCE_YOUR_CALM after a bounded number.
#[tokio::test]
async fn http2_rapid_reset_closes_the_connection() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let mut tls = h2_connection(&proxy, &cert).await;
    let block = get_headers("/slow?ms=1000");
    let mut burst = Vec::new();
    for i in 0..200u32 {
        burst.extend(frame(HEADERS, 0x5, 2 * i + 1, &block));
        burst.extend(frame(RST_STREAM, 0, 2 * i + 1, &8u32.to_be_bytes()));
    }
    // The server may close mid-write; what it said before counts.
    let _ = tls.write_all(&burst).await;
    let mut goaway = None;
    while let Some((kind, _, _, payload)) = read_frame(&mut tls).await {
        if kind == GOAWAY {
            goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
    }
    assert_eq!(goaway, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    assert!(
        shop.requests() < 200,
        "{} reached the shop",
        shop.requests()
    );
}
