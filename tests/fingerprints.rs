//! Client fingerprints through the real proxy: the JA4 of real handshakes
//! (rustls, curl) reaches the pipeline and `GET /admin/fingerprints`; a
//! trusted load balancer's header is believed and nobody else's; a
//! malformed ClientHello is refused without harm to the server.

use std::process::Command;

use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::client::{self, admin};
use crate::support::*;

const WRONG: &str = "not-the-password";
const TOOL: &str = "t13d1516h2_8daaf6152771_02713d6af862";

/// A proxy with a form login on `/login` and the admin API; `server` holds
/// the `[server]` lines beyond the listeners.
async fn proxy_with(server: &str) -> (TestCert, credgate::demo::Shop, RunningProxy) {
    proxy_with_tables(server, "").await
}

/// [`proxy_with`], and `tables` (e.g. `[limits]`) after the login route.
async fn proxy_with_tables(
    server: &str,
    tables: &str,
) -> (TestCert, credgate::demo::Shop, RunningProxy) {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let token_file = cert.dir.path().join("admin.token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let server = format!("{server}\nadmin_token_file = \"{}\"", token_file.display());
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n{tables}\n",
        config_toml(&cert, shop.addr(), &server, "")
    );
    let proxy = start_proxy(&toml).await;
    (cert, shop, proxy)
}

/// `GET /admin/fingerprints`: `(ja4, attempts, failure_ratio)`, busiest first.
async fn listed(proxy: &RunningProxy) -> Vec<(String, u64, Option<f64>)> {
    let url = proxy.admin_url("/admin/fingerprints");
    let (status, body) = admin("GET", &url, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    listing["fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["ja4"].as_str().unwrap().to_owned(),
                f["attempts"].as_u64().unwrap(),
                f["failure_ratio"].as_f64(),
            )
        })
        .collect()
}

fn is_ja4(value: &str) -> bool {
    credgate::fingerprint::Ja4::parse(value).is_some()
}

#[tokio::test]
async fn the_ja4_of_rustls_and_curl_handshakes_reaches_the_fingerprint_listing() {
    let (cert, _shop, proxy) = proxy_with("").await;
    let client = TestClient::new(&cert.der, Version::Http1);
    for _ in 0..2 {
        let answer = client
            .send(form_login(
                proxy.url("/login"),
                "",
                "alice@example.com",
                WRONG,
            ))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    }
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(cert.cert_path())
        .args(["-d", "username=bob@example.com&password=wrong"])
        .arg(proxy.url("/login"));
    // Off the runtime thread: the proxy under test runs on it.
    let curl = tokio::task::spawn_blocking(move || curl.output().expect("curl is installed"))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "401", "{curl:?}");

    let listing = listed(&proxy).await;
    assert_eq!(listing.len(), 2, "{listing:?}");
    let (rustls, curl) = (&listing[0], &listing[1]);
    // rustls to an IP address: TLS 1.3, no SNI, and (HTTP/1.1 only) no ALPN.
    assert!(
        rustls.0.starts_with("t13i") && rustls.0[8..10] == *"00",
        "{rustls:?}"
    );
    assert_eq!((rustls.1, rustls.2), (2, Some(1.0)));
    // curl with OpenSSL and nghttp2: ALPN h2 first.
    assert!(
        curl.0.starts_with("t13i") && curl.0[8..10] == *"h2",
        "{curl:?}"
    );
    assert_eq!((curl.1, curl.2), (1, Some(1.0)));
    assert!(is_ja4(&rustls.0) && is_ja4(&curl.0));

    let scrape = scrape(proxy.addrs.admin).await;
    let seen = sample(&scrape, "credgate_fingerprints_seen", &[]);
    assert!(seen == 0.0 || seen == 2.0, "a gauge of the table: {seen}");
}

#[tokio::test]
async fn a_trusted_peer_sets_the_fingerprint_and_an_untrusted_one_cannot() {
    let (cert, _shop, trusting) =
        proxy_with("trusted_proxies = [\"127.0.0.0/8\"]\nfingerprint_header = \"X-JA4\"").await;
    let client = TestClient::new(&cert.der, Version::Http2);
    let mut login = form_login(
        trusting.url("/login"),
        "198.51.100.7",
        "a@example.com",
        WRONG,
    );
    login.headers_mut().insert("x-ja4", TOOL.parse().unwrap());
    assert_eq!(client.send(login).await.status, StatusCode::UNAUTHORIZED);
    let listing = listed(&trusting).await;
    assert_eq!(listing.len(), 1);
    assert_eq!(
        listing[0].0, TOOL,
        "the trusted header names the fingerprint"
    );

    let (cert, _shop, wary) = proxy_with("fingerprint_header = \"X-JA4\"").await;
    let client = TestClient::new(&cert.der, Version::Http2);
    let mut login = form_login(wary.url("/login"), "", "a@example.com", WRONG);
    login.headers_mut().insert("x-ja4", TOOL.parse().unwrap());
    assert_eq!(client.send(login).await.status, StatusCode::UNAUTHORIZED);
    let listing = listed(&wary).await;
    assert_eq!(listing.len(), 1);
    assert_ne!(
        listing[0].0, TOOL,
        "an untrusted peer chose its fingerprint"
    );
    assert!(is_ja4(&listing[0].0));

    let mut probe = http::Request::get(wary.url("/headers"))
        .body(client::empty())
        .unwrap();
    probe.headers_mut().insert("x-ja4", TOOL.parse().unwrap());
    let echoed = client.send(probe).await;
    assert!(
        !echoed.body.to_ascii_lowercase().contains("x-ja4"),
        "the untrusted header reached the shop: {}",
        echoed.body
    );
}

#[tokio::test]
async fn malformed_and_oversized_client_hellos_are_refused_and_the_server_lives_on() {
    let (cert, _shop, proxy) = proxy_with("").await;
    let hellos: [&[u8]; 3] = [
        // A ServerHello where a ClientHello belongs.
        &[22, 3, 1, 0, 4, 2, 0, 0, 0],
        // A ClientHello that declares 16 MiB.
        &[22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff],
        // Lengths that overrun inside the hello.
        &[22, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0xff, 0xff],
    ];
    for hello in hellos {
        let mut tcp = TcpStream::connect(proxy.addrs.proxy).await.unwrap();
        tcp.write_all(hello).await.unwrap();
        let mut rest = Vec::new();
        // The server closes the connection: end of stream (or a reset).
        let _ = tcp.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "the server answered {rest:?}");
    }
    let scrape = scrape(proxy.addrs.admin).await;
    assert_eq!(
        sample(&scrape, "credgate_tls_handshake_errors_total", &[]),
        3.0
    );
    let client = TestClient::new(&cert.der, Version::Http1);
    assert_eq!(client.get(&proxy.url("/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_fingerprint_limit_throttles_a_tool_rotating_addresses_and_not_another_fingerprint() {
    // The per-address limits stay on at their defaults: a tool that rotates
    // addresses (and usernames) slips under every one of them.
    let (cert, _shop, proxy) = proxy_with_tables(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "[limits]\nfingerprint = { rate = \"1/min\", burst = 6 }",
    )
    .await;
    // Two TLS stacks: rustls offering no ALPN (the tool), and offering h2
    // (another client software), so two different JA4s.
    let tool = TestClient::new(&cert.der, Version::Http1);
    let other = TestClient::new(&cert.der, Version::Http2);
    let from = |i: usize| format!("10.{i}.0.1");
    let login = |i: usize| {
        let user = format!("user{i}@example.com");
        form_login(proxy.url("/login"), &from(i), &user, WRONG)
    };
    for i in 0..6 {
        let answer = tool.send(login(i)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let throttled = tool.send(login(6)).await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a seventh failure from a seventh address"
    );
    assert!(throttled.headers.contains_key("retry-after"));
    for i in 0..6 {
        let answer = other.send(login(i)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "another fingerprint from the same address {i} reaches the shop"
        );
    }
    let scrape = scrape(proxy.addrs.admin).await;
    let limited = |limit| sample(&scrape, "credgate_rate_limited_total", &[("limit", limit)]);
    assert_eq!(limited("fingerprint"), 1.0);
    assert_eq!(limited("ip") + limited("subnet") + limited("username"), 0.0);
}

#[tokio::test]
async fn a_denied_fingerprint_is_refused_on_logins_and_an_allowed_one_skips_the_fingerprint_limit()
{
    const ALLOWED: &str = "t13d1516h2_8daaf6152771_e5627efa2ab1";
    const OTHER: &str = "t13d1517h2_8daaf6152771_b0da82dd1658";
    let (cert, _shop, proxy) = proxy_with_tables(
        "trusted_proxies = [\"127.0.0.0/8\"]\nfingerprint_header = \"X-JA4\"",
        &format!(
            "[limits]\nfingerprint = {{ rate = \"1/min\", burst = 1 }}\n\
             [suspicion]\nfingerprint_allowlist = [\"{ALLOWED}\"]\n\
             fingerprint_denylist = [\"{TOOL}\"]"
        ),
    )
    .await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let login = |i: usize, ja4: &str| {
        let mut login = form_login(proxy.url("/login"), &format!("10.{i}.0.1"), "a@b.c", WRONG);
        login.headers_mut().insert("x-ja4", ja4.parse().unwrap());
        login
    };
    let denied = client.send(login(0, TOOL)).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let mut browse = http::Request::get(proxy.url("/"))
        .body(client::empty())
        .unwrap();
    browse.headers_mut().insert("x-ja4", TOOL.parse().unwrap());
    assert_eq!(
        client.send(browse).await.status,
        StatusCode::OK,
        "the deny list is about logins"
    );
    for i in 0..3 {
        let answer = client.send(login(i, ALLOWED)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "allowed attempt {i}"
        );
    }
    assert_eq!(
        client.send(login(0, OTHER)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client.send(login(1, OTHER)).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the limit applies to fingerprints not on the allow list"
    );
    let scrape = scrape(proxy.addrs.admin).await;
    let refused = |reason| sample(&scrape, "credgate_refusals_total", &[("reason", reason)]);
    assert_eq!(refused("denied_fingerprint"), 1.0);
    assert_eq!(refused("denied"), 0.0);
}

#[tokio::test]
async fn a_fingerprint_whose_logins_mostly_fail_from_many_addresses_is_a_risk() {
    let (cert, _shop, proxy) = proxy_with_tables(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "[limits]\nip = \"off\"\nsubnet = \"off\"\nusername = \"off\"\nglobal = \"off\"\n\
         [risk]\non_medium = \"throttle\"\n\
         tool_fingerprint = { min_attempts = 5, min_addresses = 4, failure_ratio = 0.8 }",
    )
    .await;
    let tool = TestClient::new(&cert.der, Version::Http1);
    let other = TestClient::new(&cert.der, Version::Http2);
    let login = |i: usize| {
        let user = format!("user{i}@example.com");
        form_login(proxy.url("/login"), &format!("10.{i}.0.1"), &user, WRONG)
    };
    for i in 0..5 {
        assert_eq!(
            tool.send(login(i)).await.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}"
        );
    }
    let risky = tool.send(login(5)).await;
    assert_eq!(
        risky.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the tool's fingerprint is a medium risk, which this config throttles: {}",
        risky.body
    );
    assert_eq!(
        other.send(login(5)).await.status,
        StatusCode::UNAUTHORIZED,
        "another fingerprint from the same address is no risk"
    );
    let scrape = scrape(proxy.addrs.admin).await;
    assert_eq!(
        sample(&scrape, "credgate_refusals_total", &[("reason", "risk")]),
        1.0
    );
}

#[tokio::test]
async fn the_http_fingerprints_of_http1_and_http2_clients_are_listed_beside_their_ja4() {
    let (cert, _shop, proxy) = proxy_with_tables("", "").await;
    for version in [Version::Http1, Version::Http2] {
        let client = TestClient::new(&cert.der, version);
        let login = form_login(proxy.url("/login"), "", "a@example.com", WRONG);
        assert_eq!(client.send(login).await.status, StatusCode::UNAUTHORIZED);
    }
    let url = proxy.admin_url("/admin/fingerprints");
    let (_, body) = admin("GET", &url, Some(ADMIN_TOKEN)).await;
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let http: Vec<&str> = listing["fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["http"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(http.len(), 2, "{body}");
    // hyper's HTTP/1.1 client: `content-type`, `x-forwarded-for`, `host`...
    // hashed; its HTTP/2 client: Akamai's text, the pseudo-headers as h2
    // writes them (method, scheme, authority, path).
    let h1 = http.iter().find(|h| h.starts_with("h1_")).expect(&body);
    assert_eq!(h1.len(), 18, "{h1}");
    let h2 = http.iter().find(|h| !h.starts_with("h1_")).expect(&body);
    let parts: Vec<&str> = h2.split('|').collect();
    assert_eq!(parts.len(), 4, "{h2}");
    assert!(parts[0].split(';').all(|s| s.contains(':')), "{h2}");
    assert_eq!(parts[3], "m,s,a,p", "{h2}");
}
