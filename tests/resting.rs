//! An idle HTTP/1 connection rests (credgate drops hyper's state and its
//! buffers) and wakes for the client's next request, whatever the client
//! does in between: nothing, half a request head, a request body, a slow
//! response.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{self, read_to_close, Body};
use crate::support::*;

/// Longer than credgate's rest delay (one second).
const PAST_REST: Duration = Duration::from_millis(1600);

async fn resting(proxy: &RunningProxy) -> f64 {
    sample(
        &scrape(proxy.addrs.admin).await,
        "credgate_resting_connections",
        &[],
    )
}

/// One HTTP/1.1 connection through TLS, driven by hyper's client.
async fn connection(proxy: &RunningProxy, cert: &TestCert) -> SendRequest<Body> {
    let tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn send(conn: &mut SendRequest<Body>, method: &str, path: &str, body: &str) -> String {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "shop.test")
        .body(client::full(body.to_owned()))
        .unwrap();
    let response = conn.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn an_idle_connection_rests_and_serves_its_next_requests() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let mut conn = connection(&proxy, &cert).await;

    send(&mut conn, "GET", "/", "").await;
    assert_eq!(resting(&proxy).await, 0.0, "rested within the burst");
    tokio::time::sleep(PAST_REST).await;
    assert_eq!(
        resting(&proxy).await,
        1.0,
        "an idle connection did not rest"
    );

    // Woken, it is an ordinary connection: requests, bodies, rests again.
    let echoed = send(&mut conn, "POST", "/echo", "hello").await;
    assert!(echoed.contains("hello"), "{echoed}");
    assert_eq!(resting(&proxy).await, 0.0);
    send(&mut conn, "GET", "/headers", "").await;
    tokio::time::sleep(PAST_REST).await;
    assert_eq!(resting(&proxy).await, 1.0, "did not rest a second time");
    send(&mut conn, "GET", "/", "").await;
    assert_eq!(shop.requests(), 4);
}

#[tokio::test]
async fn a_connection_busy_but_silent_does_not_rest() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;

    // A response that takes longer than the rest delay: no byte moves
    // meanwhile, and the exchange is not over.
    let mut slow = connection(&proxy, &cert).await;
    let answer = tokio::spawn(async move {
        send(&mut slow, "GET", "/slow?ms=2500", "").await;
        slow
    });
    // A request body hyper may still be reading once the response is out:
    // the connection stays awake until a request without one.
    let mut bodied = connection(&proxy, &cert).await;
    send(&mut bodied, "POST", "/echo", "a body").await;
    tokio::time::sleep(PAST_REST).await;
    assert_eq!(resting(&proxy).await, 0.0);
    let _slow = answer.await.unwrap();
    send(&mut bodied, "GET", "/", "").await;
    tokio::time::sleep(PAST_REST).await;
    assert_eq!(resting(&proxy).await, 2.0, "both rest once idle");
}

#[tokio::test]
async fn half_a_request_head_survives_the_rest() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;

    // Silent from the start, then a head in three pieces, a rest's length
    // apart: the bytes hyper held when it was let go are served, once.
    tokio::time::sleep(PAST_REST).await;
    assert_eq!(resting(&proxy).await, 1.0);
    tls.write_all(b"GET /head").await.unwrap();
    tokio::time::sleep(PAST_REST).await;
    tls.write_all(b"ers HTTP/1.1\r\nHost: shop.test\r\nX-Piece: ")
        .await
        .unwrap();
    tokio::time::sleep(PAST_REST).await;
    tls.write_all(b"three\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(
        answer.contains("three"),
        "the shop saw another head: {answer}"
    );
    assert_eq!(shop.requests(), 1);
}

#[tokio::test]
async fn a_resting_connection_waits_no_longer_than_header_read_timeout() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = r#"header_read_timeout = "3s""#;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), server, "")).await;
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tls.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let answered = Instant::now();
    read_to_close(&mut tls).await;
    let waited = answered.elapsed();
    assert!(
        waited >= Duration::from_millis(2800) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    assert_eq!(resting(&proxy).await, 0.0);
}
