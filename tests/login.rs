//! Login routes: what the shop receives, and every malformed or ambiguous
//! body refused before it gets there.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{full, Answer, Body};
use crate::support::*;

const FORM: &str = "application/x-www-form-urlencoded";
const ALICE: &str = "username=alice%40example.com&password=wonderland-42";

/// A proxy with a form login on `/login`, a JSON one on `/api/login`, and a
/// form route on the shop's `/echo` to see what the shop receives.
async fn proxy_with_logins(extra: &str) -> (TestCert, credgate::demo::Shop, RunningProxy) {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let tables = format!(
        r#"
[[login]]
path = "/login"
format = "form"
max_body = "1KiB"

[[login]]
path = "/api/login"
format = "json"
username_field = "/user/email"
password_field = "/user/password"

[[login]]
path = "/echo"
format = "auto"

{extra}
"#
    );
    let proxy = start_proxy(&config_with(&cert, shop.addr(), &tables)).await;
    (cert, shop, proxy)
}

fn post(url: String, content_type: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::post(url)
        .header("content-type", content_type)
        .body(full(body))
        .unwrap()
}

async fn send(cert: &TestCert, req: Request<Body>) -> Answer {
    TestClient::new(&cert.der, Version::Http1).send(req).await
}

#[tokio::test]
async fn a_clean_login_reaches_the_shop_byte_for_byte() {
    let (cert, shop, proxy) = proxy_with_logins("").await;
    let answer = send(&cert, post(proxy.url("/login"), FORM, ALICE)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(shop.login_requests(), 1);

    // The forwarded body is the received body, not a re-encoding of it.
    let odd = "password=wonderland-42&username=alice%40example.com&&x=%7e&y=a+b";
    let seen = send(&cert, post(proxy.url("/echo"), FORM, odd))
        .await
        .json();
    assert_eq!(seen["body"], odd);
    assert_eq!(seen["headers"]["content-length"][0], odd.len().to_string());

    let json = r#"{"user":{"password":"wonderland-42","email":"alice@example.com"}}"#;
    let answer = send(
        &cert,
        post(proxy.url("/api/login"), "application/json", json),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::NOT_FOUND,
        "reached the shop, which has no such page"
    );

    let metrics = scrape(proxy.addrs.admin).await;
    assert_eq!(
        sample(
            &metrics,
            "credgate_login_attempts_total",
            &[("verdict", "clean")]
        ),
        3.0
    );
    let login = [("route", "login"), ("decision", "allow")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &login), 1.0);
    let api = [("route", "api_login"), ("decision", "allow")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &api), 1.0);
}

#[tokio::test]
async fn a_chunked_login_is_forwarded_with_a_fresh_content_length() {
    let (cert, _shop, proxy) = proxy_with_logins("").await;
    let chunks = vec![
        Bytes::from("username=alice%40example.com"),
        Bytes::from("&password=x"),
    ];
    let stream = http_body_util::StreamBody::new(Chunks(chunks.into_iter()));
    let request = Request::post(proxy.url("/echo"))
        .header("content-type", FORM)
        .header("expect", "100-continue")
        .body(stream.boxed())
        .unwrap();
    let seen = send(&cert, request).await.json();
    let expected = "username=alice%40example.com&password=x";
    assert_eq!(seen["body"], expected);
    assert_eq!(
        seen["headers"]["content-length"][0],
        expected.len().to_string()
    );
    assert!(seen["headers"].get("transfer-encoding").is_none(), "{seen}");
    assert!(seen["headers"].get("expect").is_none(), "{seen}");
}

struct Chunks(std::vec::IntoIter<Bytes>);

impl futures_core::Stream for Chunks {
    type Item = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test]
async fn a_forged_verdict_header_never_reaches_the_shop() {
    let (cert, _shop, proxy) = proxy_with_logins("").await;
    let mut request = post(proxy.url("/echo"), FORM, ALICE);
    request
        .headers_mut()
        .insert("credgate-leaked", "none".parse().unwrap());
    let seen = send(&cert, request).await.json();
    assert!(seen["headers"].get("credgate-leaked").is_none(), "{seen}");

    let forged = Request::get(proxy.url("/headers"))
        .header("Credgate-Leaked", "pair")
        .body(full(""))
        .unwrap();
    let seen = send(&cert, forged).await.json();
    assert!(seen.get("credgate-leaked").is_none(), "{seen}");
}

/// Each malformed or ambiguous login gets its status and never reaches the
/// shop.
#[tokio::test]
async fn bad_login_bodies_are_refused_before_the_shop() {
    let (cert, shop, proxy) = proxy_with_logins("").await;
    let url = |path: &str| proxy.url(path);
    let json = "application/json";
    let cases: Vec<(&str, Request<Body>, StatusCode)> = vec![
        (
            "too large",
            post(url("/login"), FORM, "a".repeat(2048)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "malformed JSON",
            post(url("/api/login"), json, "{\"user\":"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing password",
            post(url("/login"), FORM, "username=a"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "non-UTF-8",
            post(url("/login"), FORM, "username=%FF&password=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "duplicate field",
            post(url("/login"), FORM, "username=a&username=b&password=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "duplicate after decoding",
            post(url("/login"), FORM, "username=a&user%6Eame=b&password=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "duplicate JSON key",
            post(
                url("/api/login"),
                json,
                r#"{"user":{"email":"a","password":"x","password":"y"}}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            "case variant",
            post(url("/login"), FORM, "Username=a&username=b&password=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "case variant instead",
            post(url("/login"), FORM, "Username=a&password=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "credential in query",
            post(url("/login?password=x"), FORM, ALICE),
            StatusCode::BAD_REQUEST,
        ),
        (
            "control character",
            post(url("/login"), FORM, "username=a%0D%0Ab&password=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong content type",
            post(url("/login"), json, ALICE),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            Request::post(url("/login")).body(full(ALICE)).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "compressed",
            Request::post(url("/login"))
                .header("content-type", FORM)
                .header("content-encoding", "gzip")
                .body(full(ALICE))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    let count = cases.len() as f64;
    for (case, request, status) in cases {
        let answer = send(&cert, request).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.body);
        assert!(
            !answer.body.contains("wonderland"),
            "{case}: a password was echoed"
        );
    }
    assert_eq!(shop.requests(), 0, "a bad login reached the shop");
    let metrics = scrape(proxy.addrs.admin).await;
    let rejected: f64 = ["login", "api_login"]
        .iter()
        .map(|r| {
            sample(
                &metrics,
                "credgate_requests_total",
                &[("route", r), ("decision", "reject")],
            )
        })
        .sum();
    assert_eq!(rejected, count);
}

/// Every spelling of the login path a lenient shop router accepts is
/// inspected: a duplicate field there is refused, which only an inspected
/// request can be.
#[tokio::test]
async fn login_path_variants_cannot_bypass_inspection() {
    let (cert, shop, proxy) = proxy_with_logins("").await;
    let ambiguous = "username=a&username=b&password=x";
    for path in [
        "/login",
        "/login/",
        "//login",
        "/Login",
        "/login;jsessionid=1",
        "/%6Cogin",
        "/login?x=1",
        "/static/../login",
    ] {
        let answer = send(&cert, post(proxy.url(path), FORM, ambiguous)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path} was not inspected"
        );
    }
    assert_eq!(shop.requests(), 0);
}

#[tokio::test]
async fn a_body_slower_than_body_read_timeout_gets_408() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), r#"body_read_timeout = "500ms""#, "")
        + "\n[[login]]\npath = \"/login\"\n";
    let proxy = start_proxy(&toml).await;
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: shop.test\r\nContent-Type: {FORM}\r\nContent-Length: 100\r\n\r\nusername="
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(shop.requests(), 0);
}

#[tokio::test]
async fn unparsed_bodies_can_be_forwarded_and_are_counted() {
    let (cert, shop, proxy) = proxy_with_logins("[leaked]\non_unparsed = \"forward\"").await;
    let answer = send(&cert, post(proxy.url("/login"), FORM, "username=a")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "the shop's own 400");
    assert!(
        answer.body.contains("username and password required"),
        "{}",
        answer.body
    );
    assert_eq!(shop.login_requests(), 1);

    // Ambiguous bodies are still refused.
    let answer = send(
        &cert,
        post(
            proxy.url("/login"),
            FORM,
            "username=a&username=b&password=x",
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(shop.login_requests(), 1);

    let metrics = scrape(proxy.addrs.admin).await;
    let unparsed = [("route", "login"), ("decision", "unparsed")];
    assert_eq!(sample(&metrics, "credgate_requests_total", &unparsed), 1.0);
}
