//! Usernames as people type them: a dump as such breaches are traded (GBK,
//! `----`, e-mail, password and mobile number), built by the real
//! `build-filter`, blocks the breached pair whichever way the customer types
//! the phone number or the address, and the username limit counts every
//! spelling of one number as one username.

use http::StatusCode;

use credgate::{Config, Server};

use crate::support::binary::credgate;
use crate::support::*;

const WRONG: &str = "not-the-password";

/// `dump.txt` in GBK, and the filter `build-filter` makes of it.
fn build_from_gbk_dump(dir: &std::path::Path) -> std::path::PathBuf {
    let dump = "Wang.Fang@Example.cn----密码888----13800138000\r\n\
                li.lei@example.cn----hunter2----\r\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(dump);
    let input = dir.join("dump.txt");
    std::fs::write(&input, &gbk).unwrap();
    let output = dir.join("pairs.cgf");
    let built = credgate()
        .args(["build-filter", "--kind", "pairs", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--columns", "email,pass,phone", "--encoding", "gbk"])
        .args(["--default-region", "CN"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&built.stdout);
    assert!(built.status.success(), "{stdout}");
    assert!(stdout.contains("items:      3 "), "{stdout}");
    output
}

/// A proxy config with the filter `pairs`, the `[leaked]` lines `rule`,
/// and a username limit of `burst` failed attempts.
fn config(
    cert: &TestCert,
    shop: std::net::SocketAddr,
    pairs: &std::path::Path,
    rule: &str,
    burst: u32,
) -> String {
    let tables = format!(
        r#"
[[login]]
path = "/echo"

[[login]]
path = "/login"

[limits]
username = {{ rate = "60/min", burst = {burst} }}

[suspicion]
enabled = false

[leaked]
pairs_filter = "{}"
{rule}
"#,
        pairs.display(),
    );
    let server = trusting_server_with_admin(cert);
    format!("{}\n{tables}\n", config_toml(cert, shop, &server, ""))
}

#[tokio::test]
async fn a_gbk_dump_blocks_every_spelling_and_limits_count_one_username() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let pairs = build_from_gbk_dump(cert.dir.path());

    let info = credgate().arg("filter-info").arg(&pairs).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("normalization:   auto (default region CN)"),
        "{info}"
    );
    assert!(info.contains("format version:  2"), "{info}");

    let rule = "username_normalization = \"auto\"\ndefault_region = \"CN\"";
    let proxy = start_proxy(&config(&cert, shop.addr(), &pairs, rule, 100)).await;
    let client = TestClient::new(&cert.der, Version::Http1);
    let echo = |from: &str, user: &str, password: &str| {
        form_login(proxy.url("/echo"), from, user, password)
    };

    // The breached pair, typed as the dump has it and as customers type it.
    for (i, user) in [
        "13800138000",
        "+86 138-0013-8000",
        "0086 138 0013 8000",
        "１３８ ００１３ ８０００",
        "WANG.FANG@example.CN",
        " Wang.Fang@Example.cn ",
    ]
    .into_iter()
    .enumerate()
    {
        let from = format!("192.0.2.{}", i + 1);
        let answer = client.send(echo(&from, user, "密码888")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{user:?}");
    }
    // The line without a phone number still yields its e-mail pair.
    let answer = client
        .send(echo("192.0.2.9", "LI.LEI@example.cn", "hunter2"))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // Another password is clean.
    let answer = client
        .send(echo("192.0.2.10", "+8613800138000", WRONG))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // The username limit (burst 2, charged by failures): two spellings of
    // one number from two addresses, and a third spelling is throttled.
    drop(proxy);
    let proxy = start_proxy(&config(&cert, shop.addr(), &pairs, rule, 2)).await;
    let login = |from: &str, user: &str| form_login(proxy.url("/login"), from, user, WRONG);
    for (from, user) in [
        ("198.51.100.1", "13912345678"),
        ("198.51.100.2", "+86 139 1234 5678"),
    ] {
        let answer = client.send(login(from, user)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{user:?}");
    }
    let answer = client
        .send(login("198.51.100.3", "0086-139-1234-5678"))
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let answer = client.send(login("198.51.100.4", "12345678")).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "a QQ number is another username"
    );
}

#[tokio::test]
async fn a_config_that_does_not_say_auto_names_the_keys_to_set() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let pairs = build_from_gbk_dump(cert.dir.path());
    for rule in [
        "",
        "username_normalization = \"auto\"\ndefault_region = \"US\"",
    ] {
        let config = Config::from_toml(&config(&cert, shop.addr(), &pairs, rule, 2)).unwrap();
        let error = match Server::bind(&config).await {
            Ok(_) => panic!("started with a filter of another rule ({rule:?})"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.contains("username_normalization = \"auto\", default_region = \"CN\""),
            "{error}"
        );
    }
}
