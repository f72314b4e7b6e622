//! Login presets, each through the binary: the platform's real login request
//! (tests/support/platforms.rs) yields its credentials, so a leaked pair is
//! blocked before the platform sees it, and the platform's real answers to
//! a right and a wrong password are told apart.

use http::{Request, StatusCode};

use credgate::leaked::FilterKind;

use crate::support::binary::Process;
use crate::support::client::full;
use crate::support::platforms::{self, Platform, ScriptedUpstream};
use crate::support::*;

const LEAKED: (&str, &str) = ("leaked@example.com", "p@ss word&1=2");
const CLEAN: (&str, &str) = ("customer@example.com", "Tr0ub4dor&3 \"x\"");

/// The platform's login request with these credentials; `x-script` tells
/// the scripted upstream which of its recorded answers to give.
fn login(
    proxy: &Process,
    platform: &Platform,
    (user, password): (&str, &str),
    script: &str,
) -> Request<client::Body> {
    let mut request = Request::post(format!(
        "https://127.0.0.1:{}{}",
        proxy.proxy.port(),
        platform.target
    ))
    .header("content-type", platform.content_type)
    .header("x-script", script);
    for (name, value) in platform.headers {
        request = request.header(*name, *value);
    }
    request
        .body(full(platform.body_for(user, password)))
        .unwrap()
}

/// credgate (the binary) with `platform`'s preset in front of its scripted
/// upstream, and a breach holding [`LEAKED`].
async fn start(platform: &'static Platform) -> (TestCert, ScriptedUpstream, Process) {
    let cert = TestCert::generate();
    let upstream = platforms::start_upstream(platform).await;
    let pairs = build_filter(
        cert.dir.path(),
        "pairs.cgf",
        FilterKind::Pairs,
        &[&format!("{}:{}", LEAKED.0, LEAKED.1)],
    );
    let tables = format!(
        r#"
[[login]]
preset = "{preset}"
{extra}

[leaked]
pairs_filter = "{pairs}"
on_leaked_pair = "block"

[limits]
ip = "off"
subnet = "off"
username = "off"
"#,
        preset = platform.preset,
        extra = platform.extra,
        pairs = pairs.display(),
    );
    let config = cert.dir.path().join("credgate.toml");
    std::fs::write(&config, config_with(&cert, upstream.addr, &tables)).unwrap();
    let proxy = Process::serve(&config);
    (cert, upstream, proxy)
}

async fn check(platform: &'static Platform) {
    let (cert, upstream, proxy) = start(platform).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let name = platform.preset;

    // The credentials are where the platform's form puts them: the leaked
    // pair is refused, and the platform never sees it.
    let answer = client
        .send(login(&proxy, platform, LEAKED, "success"))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "{name}: {}",
        answer.body
    );
    assert_eq!(upstream.requests(), 0, "{name}");

    // A clean pair reaches the platform, whose answers pass unchanged.
    let answer = client.send(login(&proxy, platform, CLEAN, "success")).await;
    assert_eq!(
        answer.status.as_u16(),
        platform.success.status,
        "{name}: {}",
        answer.body
    );
    let answer = client.send(login(&proxy, platform, CLEAN, "failure")).await;
    assert_eq!(
        answer.status.as_u16(),
        platform.failure.status,
        "{name}: {}",
        answer.body
    );
    assert_eq!(answer.body, platform.failure.body, "{name}");
    assert_eq!(upstream.requests(), 2, "{name}");

    // The platform's other forms on the same path are no login attempts:
    // they reach it unchecked and uncounted.
    if let Some((target, body)) = platform.other_form {
        let request = Request::post(format!("https://127.0.0.1:{}{target}", proxy.proxy.port()))
            .header("content-type", platform.content_type)
            .body(full(body))
            .unwrap();
        let answer = client.send(request).await;
        assert_eq!(
            answer.status.as_u16(),
            platform.failure.status,
            "{name}: {}",
            answer.body
        );
        assert_eq!(upstream.requests(), 3, "{name}");
    }

    // ... and are told apart.
    let metrics = scrape(proxy.admin).await;
    let outcome = |outcome: &str| {
        sample(
            &metrics,
            "credgate_login_outcomes_total",
            &[("outcome", outcome), ("verdict", "clean")],
        )
    };
    assert_eq!(outcome("success"), 1.0, "{name}");
    assert_eq!(outcome("failure"), 1.0, "{name}");
    let attempts = |verdict: &str| {
        sample(
            &metrics,
            "credgate_login_attempts_total",
            &[("verdict", verdict)],
        )
    };
    assert_eq!(attempts("leaked_pair"), 1.0, "{name}");
    assert_eq!(attempts("clean"), 2.0, "{name}");
}

#[tokio::test]
async fn wordpress() {
    check(&platforms::WORDPRESS).await;
}

#[tokio::test]
async fn woocommerce() {
    check(&platforms::WOOCOMMERCE).await;
}

#[tokio::test]
async fn magento2() {
    check(&platforms::MAGENTO2).await;
}

#[tokio::test]
async fn shopware6() {
    check(&platforms::SHOPWARE6).await;
}

#[tokio::test]
async fn shopware6_store_api() {
    check(&platforms::SHOPWARE6_STORE_API).await;
}

#[tokio::test]
async fn prestashop() {
    check(&platforms::PRESTASHOP).await;
}

#[tokio::test]
async fn django() {
    check(&platforms::DJANGO).await;
}

#[tokio::test]
async fn keycloak() {
    check(&platforms::KEYCLOAK).await;
}

/// Shopware reads `email` before `username`: a body with both is refused,
/// or the leaked pair in `email` would pass as the clean `username`.
#[tokio::test]
async fn a_shopware_login_naming_its_user_twice_is_refused() {
    for platform in [&platforms::SHOPWARE6, &platforms::SHOPWARE6_STORE_API] {
        let (cert, upstream, proxy) = start(platform).await;
        let client = TestClient::new(&cert.der, Version::Http1);
        let body = match platform.json {
            true => format!(
                r#"{{"username":"{}","email":"{}","password":"{}"}}"#,
                CLEAN.0, LEAKED.0, LEAKED.1
            ),
            false => form_urlencoded::Serializer::new(String::new())
                .append_pair("username", CLEAN.0)
                .append_pair("email", LEAKED.0)
                .append_pair("password", LEAKED.1)
                .finish(),
        };
        let request = Request::post(format!(
            "https://127.0.0.1:{}{}",
            proxy.proxy.port(),
            platform.target
        ))
        .header("content-type", platform.content_type)
        .body(full(body))
        .unwrap();
        let answer = client.send(request).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{}",
            platform.preset
        );
        assert_eq!(upstream.requests(), 0, "{}", platform.preset);
    }
}

/// Every recorded platform has its test above, and every preset a platform.
#[test]
fn every_preset_is_recorded() {
    let recorded: Vec<_> = platforms::ALL.iter().map(|p| p.preset).collect();
    for preset in recorded.iter() {
        let toml = format!("preset = \"{preset}\"\npath = \"/x\"");
        let login: credgate::config::Login = toml::from_str(&toml).unwrap();
        assert_eq!(login.preset.map(|p| p.as_str()), Some(*preset));
    }
    assert_eq!(recorded.len(), credgate::config::Preset::ALL.len());
}
