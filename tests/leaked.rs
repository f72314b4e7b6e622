//! Leaked credentials on login routes: each verdict and action, for form and
//! JSON bodies, and filters that reload without losing a request.

use std::path::PathBuf;
use std::time::Duration;

use http::{Request, StatusCode};
use serde_json::Value;

use credgate::leaked::FilterKind;
use credgate::{Config, Server};

use crate::support::client::{admin, full, Answer};
use crate::support::*;

const TOKEN: &str = ADMIN_TOKEN;
// The demo shop's accounts: bob's pair is in the breach, carol's password is
// (with another username), alice is clean.
const BOB: (&str, &str) = ("bob@example.com", "correct horse battery staple");
const CAROL: (&str, &str) = ("carol@example.com", "Tr0ub4dor&3");
const ALICE: (&str, &str) = ("alice@example.com", "wonderland-42");

struct Breach {
    pairs: PathBuf,
    passwords: PathBuf,
}

fn breach(cert: &TestCert) -> Breach {
    let dir = cert.dir.path();
    let pairs = build_filter(
        dir,
        "pairs.cgf",
        FilterKind::Pairs,
        &[
            "someone@example.net:123456",
            "bob@example.com:correct horse battery staple",
        ],
    );
    let passwords = build_filter(
        dir,
        "passwords.cgf",
        FilterKind::Passwords,
        &["123456", "Tr0ub4dor&3"],
    );
    Breach { pairs, passwords }
}

/// A login route on the shop's `/echo` (form fields `email`/`password`, JSON
/// `/user/email` and `/user/password`) and the filters of `breach`.
fn leaked_config(
    cert: &TestCert,
    shop: std::net::SocketAddr,
    breach: &Breach,
    leaked: &str,
) -> String {
    let token_file = cert.dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let tables = format!(
        r#"
[[login]]
path = "/echo"
username_field = "/user/email"
password_field = "/user/password"

[[login]]
path = "/login"

# These tests replay leaked pairs from one address on purpose.
[suspicion]
enabled = false
[limits]
ip = "off"
subnet = "off"
username = "off"
global = "off"

[leaked]
pairs_filter = "{}"
passwords_filter = "{}"
{leaked}
"#,
        breach.pairs.display(),
        breach.passwords.display(),
    );
    config_with(cert, shop, &tables).replace(
        "[server]\n",
        &format!(
            "[server]\nadmin_token_file = \"{}\"\n",
            token_file.display()
        ),
    )
}

fn form_login(
    url: String,
    (user, password): (&str, &str),
) -> Request<crate::support::client::Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("email", user)
        .append_pair("password", password)
        .finish();
    Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .unwrap()
}

fn json_login(
    url: String,
    (user, password): (&str, &str),
) -> Request<crate::support::client::Body> {
    let body = serde_json::json!({"user": {"email": user, "password": password}}).to_string();
    Request::post(url)
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap()
}

/// What the shop saw: the annotation header, or `None` when the request
/// never reached it (a 403 from credgate).
fn annotation(answer: &Answer) -> Option<Option<String>> {
    match answer.status {
        StatusCode::FORBIDDEN => None,
        StatusCode::OK => {
            let seen: Value = answer.json();
            Some(
                seen["headers"]["credgate-leaked"][0]
                    .as_str()
                    .map(str::to_owned),
            )
        }
        other => panic!("unexpected {other}: {}", answer.body),
    }
}

#[tokio::test]
async fn each_verdict_and_action_for_form_and_json() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let breach = breach(&cert);
    let client = TestClient::new(&cert.der, Version::Http1);
    let pair = Some("pair".to_owned());
    let password = Some("password".to_owned());
    // (action, bob's fate, carol's fate): None = blocked, Some(header) = reached.
    let table = [
        ("block", None, None),
        ("annotate", Some(pair.clone()), Some(password.clone())),
        ("shadow", Some(None), Some(None)),
    ];
    for (action, bob, carol) in table {
        let leaked = format!("on_leaked_pair = \"{action}\"\non_leaked_password = \"{action}\"");
        let proxy = start_proxy(&leaked_config(&cert, shop.addr(), &breach, &leaked)).await;
        for request in [form_login, json_login] {
            let url = || proxy.url("/echo");
            let answer = client.send(request(url(), BOB)).await;
            assert_eq!(annotation(&answer), bob, "{action}: bob");
            let answer = client.send(request(url(), CAROL)).await;
            assert_eq!(annotation(&answer), carol, "{action}: carol");
            let answer = client.send(request(url(), ALICE)).await;
            assert_eq!(annotation(&answer), Some(None), "{action}: alice");
            // Normalised as the filter was built: case and spaces do not hide a pair.
            let answer = client
                .send(request(url(), (" BOB@Example.COM ", BOB.1)))
                .await;
            assert_eq!(annotation(&answer), bob, "{action}: bob in capitals");
        }
        let metrics = scrape(proxy.addrs.admin).await;
        let attempts = |verdict| {
            sample(
                &metrics,
                "credgate_login_attempts_total",
                &[("verdict", verdict)],
            )
        };
        assert_eq!(attempts("leaked_pair"), 4.0, "{action}");
        assert_eq!(attempts("leaked_password"), 2.0, "{action}");
        assert_eq!(attempts("clean"), 2.0, "{action}");
        let decision = [("route", "echo"), ("decision", action)];
        assert_eq!(
            sample(&metrics, "credgate_requests_total", &decision),
            6.0,
            "{action}"
        );
    }
}

#[tokio::test]
async fn a_blocked_login_gets_the_operators_page_and_never_reaches_the_shop() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let breach = breach(&cert);
    let page = cert.dir.path().join("blocked.html");
    std::fs::write(&page, "<h1>Reset your password at /reset</h1>").unwrap();
    let leaked = format!("block_body_file = \"{}\"", page.display());
    let proxy = start_proxy(&leaked_config(&cert, shop.addr(), &breach, &leaked)).await;
    let client = TestClient::new(&cert.der, Version::Http2);
    let body = format!("username={}&password={}", BOB.0, BOB.1.replace(' ', "+"));
    let request = Request::post(proxy.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(full(body))
        .unwrap();
    let answer = client.send(request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body, "<h1>Reset your password at /reset</h1>");
    assert_eq!(answer.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(shop.login_requests(), 0);
}

async fn start_error(toml: &str) -> String {
    let config = Config::from_toml(toml).unwrap();
    match Server::bind(&config).await {
        Ok(_) => panic!("started with a bad filter"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn bad_filters_stop_the_start_with_a_clear_message() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let breach = breach(&cert);

    let swapped = Breach {
        pairs: breach.passwords.clone(),
        passwords: breach.pairs.clone(),
    };
    let error = start_error(&leaked_config(&cert, shop.addr(), &swapped, "")).await;
    assert!(
        error.contains("passwords") && error.contains("pairs"),
        "{error}"
    );

    let truncated = cert.dir.path().join("truncated.cgf");
    let bytes = std::fs::read(&breach.pairs).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let bad = Breach {
        pairs: truncated.clone(),
        passwords: breach.passwords.clone(),
    };
    let error = start_error(&leaked_config(&cert, shop.addr(), &bad, "")).await;
    assert!(error.contains(&truncated.display().to_string()), "{error}");

    let mismatch = leaked_config(
        &cert,
        shop.addr(),
        &breach,
        "username_normalization = \"none\"",
    );
    let error = start_error(&mismatch).await;
    assert!(error.contains("normalization"), "{error}");
}

/// Swaps `to` into `path` atomically, as a deployment would.
fn replace(path: &std::path::Path, to: &std::path::Path) {
    let staged = path.with_extension("staged");
    std::fs::copy(to, &staged).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

#[tokio::test]
async fn reloads_swap_good_filters_and_refuse_bad_ones() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let breach = breach(&cert);
    let proxy = start_proxy(&leaked_config(
        &cert,
        shop.addr(),
        &breach,
        "watch_interval = \"0s\"",
    ))
    .await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let reload_url = proxy.admin_url("/admin/reload");
    let reload = || admin("POST", &reload_url, Some(TOKEN));
    assert_eq!(
        annotation(&client.send(form_login(proxy.url("/echo"), ALICE)).await),
        Some(None)
    );

    // A new breach that contains alice: after the reload she is blocked.
    let newer = build_filter(
        cert.dir.path(),
        "newer.cgf",
        FilterKind::Pairs,
        &[&format!("{}:{}", ALICE.0, ALICE.1)],
    );
    replace(&breach.pairs, &newer);
    let (status, body) = reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        annotation(&client.send(form_login(proxy.url("/echo"), ALICE)).await),
        None
    );

    // A corrupt file is refused; the filter that was serving still serves.
    let mut corrupt = std::fs::read(&breach.pairs).unwrap();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    std::fs::write(cert.dir.path().join("corrupt.cgf"), &corrupt).unwrap();
    replace(&breach.pairs, &cert.dir.path().join("corrupt.cgf"));
    let (status, body) = reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.contains("pairs") && body.contains("checksum"),
        "{body}"
    );
    assert_eq!(
        annotation(&client.send(form_login(proxy.url("/echo"), ALICE)).await),
        None
    );

    let metrics = scrape(proxy.addrs.admin).await;
    let reloads = |result| {
        sample(
            &metrics,
            "credgate_filter_reloads_total",
            &[("filter", "pairs"), ("result", result)],
        )
    };
    assert_eq!(reloads("success"), 1.0);
    assert_eq!(reloads("failure"), 1.0);
    assert_eq!(
        sample(&metrics, "credgate_filter_items", &[("filter", "pairs")]),
        1.0
    );

    let (status, listing) = admin("GET", &proxy.admin_url("/admin/filters"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let listing: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listing[0]["filter"], "pairs");
    assert_eq!(listing[0]["items"], 1);
    assert_eq!(listing[1]["filter"], "passwords");
}

#[tokio::test]
async fn a_replaced_filter_file_is_picked_up_by_the_watch() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let breach = breach(&cert);
    let proxy = start_proxy(&leaked_config(
        &cert,
        shop.addr(),
        &breach,
        "watch_interval = \"50ms\"",
    ))
    .await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let newer = build_filter(
        cert.dir.path(),
        "newer.cgf",
        FilterKind::Pairs,
        &[&format!("{}:{}", ALICE.0, ALICE.1)],
    );
    replace(&breach.pairs, &newer);
    let mut blocked = false;
    for _ in 0..100 {
        if annotation(&client.send(form_login(proxy.url("/echo"), ALICE)).await).is_none() {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(blocked, "the watch never loaded the new filter");
}

/// 20 reloads, alternating two filters, while four clients log in without
/// pause: every request gets a proper answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let breach = breach(&cert);
    let other = build_filter(
        cert.dir.path(),
        "other.cgf",
        FilterKind::Pairs,
        &[
            "x@example.com:y",
            "bob@example.com:correct horse battery staple",
        ],
    );
    let first = cert.dir.path().join("first.cgf");
    std::fs::copy(&breach.pairs, &first).unwrap();
    let proxy = start_proxy(&leaked_config(
        &cert,
        shop.addr(),
        &breach,
        "watch_interval = \"0s\"",
    ))
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, der, stop) = (proxy.url("/echo"), cert.der.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let client = TestClient::new(&der, Version::Http1);
            let mut answered = 0u32;
            while !stop.is_cancelled() {
                let who = if answered % 2 == 0 { ALICE } else { BOB };
                let answer = client
                    .try_send(form_login(url.clone(), who))
                    .await
                    .expect("a request failed");
                let expected = if who == BOB {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::OK
                };
                assert_eq!(answer.status, expected, "{}", answer.body);
                answered += 1;
            }
            answered
        }));
    }
    for i in 0..20 {
        replace(&breach.pairs, if i % 2 == 0 { &other } else { &first });
        let (status, body) = admin("POST", &proxy.admin_url("/admin/reload"), Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut total = 0;
    for client in clients {
        total += client.await.unwrap();
    }
    assert!(total > 40, "too little traffic during the reloads: {total}");
    let metrics = scrape(proxy.addrs.admin).await;
    let ok = [("filter", "pairs"), ("result", "success")];
    assert_eq!(sample(&metrics, "credgate_filter_reloads_total", &ok), 20.0);
}
