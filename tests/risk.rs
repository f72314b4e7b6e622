//! Risk per attempt and device trust, end to end: the device cookie a
//! successful login earns, what makes it untrusted, and the `Credgate-Risk`
//! header that only credgate may set.
//!
//! Attack mode is never on here, so the configs make a leaked password on
//! an unknown device medium and annotate medium: a login's level is then
//! visible to the shop's `/echo` (which lets every login in).

use std::time::Duration;

use http::{Request, StatusCode};
use serde_json::Value;

use credgate::leaked::FilterKind;
use credgate::{Config, Server};

use crate::support::client::{full, Answer, Body};
use crate::support::*;

const CLEAN: &str = "a fine unbreached password";
const LEAKED: &str = "Tr0ub4dor&3";
const KEY: &str = "8f1e3a5b7c9d0e2f4a6b8c0d1e3f5a7b9c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f";

/// `/echo` as a form login, a passwords filter holding [`LEAKED`], and
/// `[risk]` with `risk` appended.
fn risk_config(cert: &TestCert, shop: std::net::SocketAddr, risk: &str) -> String {
    let dir = cert.dir.path();
    let pairs = build_filter(dir, "pairs.cgf", FilterKind::Pairs, &["x@example.net:1"]);
    let passwords = build_filter(dir, "passwords.cgf", FilterKind::Passwords, &[LEAKED]);
    let key = dir.join("device.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let tables = format!(
        r#"
[[login]]
path = "/echo"

[suspicion]
enabled = false

[leaked]
pairs_filter = "{}"
passwords_filter = "{}"
on_leaked_password = "shadow"

[risk]
device_key_file = "{}"
{risk}
"#,
        pairs.display(),
        passwords.display(),
        key.display(),
    );
    config_with(cert, shop, &tables)
}

fn login(url: String, user: &str, password: &str, cookie: Option<&str>) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", user)
        .append_pair("password", password)
        .finish();
    let mut request =
        Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("theme=dark; {cookie}"));
    }
    request.body(full(body)).unwrap()
}

/// The `Credgate-Risk` values the shop received.
fn risk_seen(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let seen: Value = answer.json();
    seen["headers"]["credgate-risk"]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `name=value` of the answer's device cookie, after checking its
/// attributes.
fn device_cookie(answer: &Answer) -> String {
    let set = answer.headers["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("credgate_device_"), "{set}");
    assert!(
        set.ends_with("; Path=/; Max-Age=7776000; Secure; HttpOnly; SameSite=Lax")
            || set.contains("; Path=/; Max-Age=2; Secure; HttpOnly; SameSite=Lax"),
        "{set}"
    );
    assert!(!set.to_lowercase().contains("alice"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

const MEDIUM: &str = "on_medium = \"annotate\"";

#[tokio::test]
async fn a_successful_login_earns_a_device_cookie_that_makes_the_next_login_known() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&risk_config(&cert, shop.addr(), MEDIUM)).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = || proxy.url("/echo");
    let alice = "alice@example.com";

    let first = client.send(login(url(), alice, CLEAN, None)).await;
    assert_eq!(risk_seen(&first), Vec::<String>::new());
    let cookie = device_cookie(&first);

    // Known device: low, although the password is leaked; the username is
    // normalised as the filters normalise it.
    let known = client
        .send(login(url(), alice, LEAKED, Some(&cookie)))
        .await;
    assert_eq!(risk_seen(&known), Vec::<String>::new());
    let capitals = " Alice@Example.COM";
    let known = client
        .send(login(url(), capitals, LEAKED, Some(&cookie)))
        .await;
    assert_eq!(risk_seen(&known), Vec::<String>::new());
    // An annotated login earns no cookie: its step-up is not proven.
    let unknown = client.send(login(url(), alice, LEAKED, None)).await;
    assert_eq!(risk_seen(&unknown), ["medium"]);
    assert!(unknown.headers.get("set-cookie").is_none());

    let metrics = scrape(proxy.addrs.admin).await;
    let level = |l| sample(&metrics, "credgate_login_risk_total", &[("level", l)]);
    assert_eq!(
        (level("low"), level("medium"), level("high")),
        (3.0, 1.0, 0.0)
    );
}

#[tokio::test]
async fn a_tampered_or_other_users_device_cookie_is_not_trusted() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&risk_config(&cert, shop.addr(), MEDIUM)).await;
    let client = TestClient::new(&cert.der, Version::Http2);
    let url = || proxy.url("/echo");
    let first = client
        .send(login(url(), "alice@example.com", CLEAN, None))
        .await;
    let cookie = device_cookie(&first);

    let other_user = client
        .send(login(url(), "bob@example.com", LEAKED, Some(&cookie)))
        .await;
    assert_eq!(risk_seen(&other_user), ["medium"]);

    let (name, value) = cookie.split_once('=').unwrap();
    let (signed, tag) = value.rsplit_once('.').unwrap();
    let (version, expiry) = signed.split_once('.').unwrap();
    let flipped = match tag.as_bytes()[0] {
        b'A' => format!("B{}", &tag[1..]),
        _ => format!("A{}", &tag[1..]),
    };
    let longer = expiry.parse::<u64>().unwrap() + 86400;
    for tampered in [
        format!("{name}={signed}.{flipped}"),
        format!("{name}={version}.{longer}.{tag}"),
        format!("{name}=v1.{expiry}"),
        format!("credgate_device_AAAAAAAA={value}"),
    ] {
        let answer = client
            .send(login(url(), "alice@example.com", LEAKED, Some(&tampered)))
            .await;
        assert_eq!(risk_seen(&answer), ["medium"], "{tampered}");
    }
}

#[tokio::test]
async fn an_expired_device_cookie_is_not_trusted() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let risk = format!("{MEDIUM}\ndevice_cookie_max_age = \"2s\"");
    let proxy = start_proxy(&risk_config(&cert, shop.addr(), &risk)).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = || proxy.url("/echo");
    let first = client
        .send(login(url(), "dan@example.com", CLEAN, None))
        .await;
    let cookie = device_cookie(&first);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let expired = client
        .send(login(url(), "dan@example.com", LEAKED, Some(&cookie)))
        .await;
    assert_eq!(risk_seen(&expired), ["medium"]);
}

#[tokio::test]
async fn a_clients_credgate_risk_never_reaches_the_shop() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&risk_config(&cert, shop.addr(), MEDIUM)).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let forged = |mut request: Request<Body>| {
        let headers = request.headers_mut();
        headers.append("credgate-risk", "low".parse().unwrap());
        headers.append("Credgate-Risk", "none".parse().unwrap());
        request
    };
    let passthrough = client
        .send(forged(
            Request::get(proxy.url("/headers")).body(full("")).unwrap(),
        ))
        .await;
    let seen: Value = passthrough.json();
    assert!(seen.get("credgate-risk").is_none(), "{seen}");
    let low = forged(login(proxy.url("/echo"), "erin@example.com", CLEAN, None));
    assert_eq!(risk_seen(&client.send(low).await), Vec::<String>::new());
    let medium = forged(login(proxy.url("/echo"), "erin@example.com", LEAKED, None));
    assert_eq!(risk_seen(&client.send(medium).await), ["medium"]);
}

#[tokio::test]
async fn throttled_and_blocked_risk_never_reaches_the_shop() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let client = TestClient::new(&cert.der, Version::Http1);
    for (action, status) in [
        ("throttle", StatusCode::TOO_MANY_REQUESTS),
        ("block", StatusCode::FORBIDDEN),
    ] {
        let risk = format!("on_medium = \"{action}\"");
        let proxy = start_proxy(&risk_config(&cert, shop.addr(), &risk)).await;
        let before = shop.requests();
        let answer = client
            .send(login(proxy.url("/echo"), "fay@example.com", LEAKED, None))
            .await;
        assert_eq!(answer.status, status, "{action}: {}", answer.body);
        assert_eq!(
            answer.headers.contains_key("retry-after"),
            action == "throttle"
        );
        assert_eq!(shop.requests(), before, "{action}");
        let metrics = scrape(proxy.addrs.admin).await;
        let refused = sample(&metrics, "credgate_refusals_total", &[("reason", "risk")]);
        assert_eq!(refused, 1.0, "{action}");
    }
}

#[tokio::test]
async fn a_bad_device_key_file_stops_the_start_and_names_the_file() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = risk_config(&cert, shop.addr(), "");
    std::fs::write(cert.dir.path().join("device.key"), "too short\n").unwrap();
    let config = Config::from_toml(&toml).unwrap();
    let error = match Server::bind(&config).await {
        Ok(_) => panic!("started with a bad device key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("device.key"), "{error}");
    assert!(error.contains("line 1"), "{error}");
}

/// Under attack, logins from devices without a device cookie share
/// `[attack] untrusted_budget`; over it they are high (a step-up), never
/// refused. A returning customer's browser is not charged.
#[tokio::test]
async fn under_attack_unknown_devices_over_the_budget_are_stepped_up_not_refused() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let budget = "[attack]\nuntrusted_budget = { rate = \"1/min\", burst = 2 }";
    let toml = format!("{}\n{budget}\n", risk_config(&cert, shop.addr(), "")).replacen(
        "[server]\n",
        &format!("[server]\n{}\n", trusting_server_with_admin(&cert)),
        1,
    );
    let proxy = start_proxy(&toml).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = || proxy.url("/echo");
    let first = client
        .send(login(url(), "alice@example.com", CLEAN, None))
        .await;
    let cookie = device_cookie(&first);
    // Accounts that logged in here before: under attack, from an unknown
    // device, they are medium (allowed on defaults), within the budget.
    let users = ["bob@example.com", "carol@example.com"];
    for user in users {
        let answer = client.send(login(url(), user, CLEAN, None)).await;
        assert_eq!(risk_seen(&answer), Vec::<String>::new(), "{user}");
    }

    let force = r#"{"mode": "on"}"#.to_owned();
    let admin = proxy.admin_url("/admin/attack-mode");
    let (status, body) =
        crate::support::client::admin_json("POST", &admin, force, ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Never logged in here: high anyway; it takes a cell all the same.
    let erin = client
        .send(login(url(), "erin@example.com", CLEAN, None))
        .await;
    assert_eq!(risk_seen(&erin), ["high"]);
    for user in &users[..1] {
        let answer = client.send(login(url(), user, CLEAN, None)).await;
        assert_eq!(risk_seen(&answer), Vec::<String>::new(), "{user}");
    }
    let spent = client.send(login(url(), users[1], CLEAN, None)).await;
    assert_eq!(risk_seen(&spent), ["high"], "over the budget: a step-up");
    let known = client
        .send(login(url(), "alice@example.com", CLEAN, Some(&cookie)))
        .await;
    assert_eq!(risk_seen(&known), Vec::<String>::new(), "not charged");

    let metrics = scrape(proxy.addrs.admin).await;
    let exceeded = sample(&metrics, "credgate_untrusted_budget_exceeded_total", &[]);
    assert_eq!(exceeded, 1.0);
}
