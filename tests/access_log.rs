//! The access log: one line per request on `credgate::access`, every field
//! present, no credential in it, and the request id the shop received.

use http::Request;

use crate::support::binary::Process;
use crate::support::client::{self, TestClient, Version};
use crate::support::*;

const LOGIN: &str = "[[login]]\npath = \"/login\"\nformat = \"form\"\n";

fn write_config(cert: &TestCert, toml: &str) -> std::path::PathBuf {
    let path = cert.dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// The JSON lines of the access target.
fn access_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "credgate::access")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_every_field_the_shops_request_id_and_no_credential() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let mut proxy = Process::serve(&write_config(
        &cert,
        &config_with(&cert, shop.addr(), LOGIN),
    ));
    let client = TestClient::new(&cert.der, Version::Http1);
    let base = format!("https://127.0.0.1:{}", proxy.proxy.port());

    // An untrusted client's id is replaced; the shop gets ours.
    let forged = Request::get(format!("{base}/headers?page=2"))
        .header("x-request-id", "forged")
        .header("user-agent", "access-test")
        .body(client::empty())
        .unwrap();
    let seen = client.send(forged).await.json();
    let shop_id = seen["x-request-id"][0].as_str().unwrap().to_owned();
    assert_ne!(shop_id, "forged");

    let login = form_login(
        format!("{base}/login?next=/cart&password=in-the-query"),
        "198.51.100.9",
        "alice@example.com",
        "wonderland-42",
    );
    client.send(login).await;

    let (_, logs) = proxy.stop();
    assert!(!logs.contains("wonderland-42"), "{logs}");
    assert!(!logs.contains("in-the-query"), "{logs}");
    let lines = access_lines(&logs);
    assert_eq!(lines.len(), 2, "{logs}");
    let (get, post) = (&lines[0], &lines[1]);
    for line in &lines {
        assert_eq!(line["level"], "INFO");
        for field in [
            "timestamp",
            "client",
            "peer",
            "method",
            "host",
            "path",
            "protocol",
            "status",
            "total_seconds",
            "route",
            "decision",
            "request_id",
        ] {
            assert!(!line[field].is_null(), "{field} missing: {line}");
        }
    }
    assert_eq!(get["method"], "GET");
    assert_eq!(get["path"], "/headers?page=2");
    assert_eq!(get["protocol"], "HTTP/1.1");
    assert_eq!(get["status"], 200);
    assert_eq!(get["route"], "passthrough");
    assert_eq!(get["request_id"], shop_id.as_str());
    assert!(get["upstream_seconds"].as_f64().is_some(), "{get}");
    assert!(get["bytes_out"].as_u64().unwrap() > 0, "{get}");
    assert_eq!(get["client"], "127.0.0.1");
    // Which software sent it: the connection's JA4 and the header names of
    // its first request, in their order and case.
    let fingerprints = |line: &serde_json::Value| {
        let ja4 = line["ja4"].as_str().unwrap_or_default().to_owned();
        assert!(credgate::fingerprint::Ja4::parse(&ja4).is_some(), "{line}");
        let http = line["http_fingerprint"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(http.starts_with("h1_") && http.len() == 18, "{line}");
        (ja4, http)
    };
    let first = fingerprints(get);
    let second = fingerprints(post);
    // The client's pool may open a second connection for the login when
    // the first is not back in the pool yet: the same connection carries
    // the same fingerprints, another one its own.
    if post["peer"] == get["peer"] {
        assert_eq!(second, first);
    }

    assert_eq!(post["method"], "POST");
    assert_eq!(post["route"], "login");
    assert_eq!(post["path"], "/login?next=/cart&password=***");
    assert!(post["bytes_in"].as_u64().unwrap() > 0, "{post}");
    assert_ne!(post["request_id"], get["request_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_access_log_samples_pass_through_but_always_logs_logins() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_with(&cert, shop.addr(), LOGIN).replace(
        "level = \"debug\"",
        "level = \"info\"\naccess_format = \"combined\"\npassthrough_sample = 0.0",
    );
    let mut proxy = Process::serve(&write_config(&cert, &toml));
    let client = TestClient::new(&cert.der, Version::Http1);
    let base = format!("https://127.0.0.1:{}", proxy.proxy.port());
    client.get(&format!("{base}/")).await;
    let login = form_login(
        format!("{base}/login"),
        "198.51.100.9",
        "bob",
        "pw-secret-7",
    );
    client.send(login).await;

    let (_, logs) = proxy.stop();
    let access: Vec<&str> = logs.lines().filter(|l| l.contains("request_id=")).collect();
    assert_eq!(access.len(), 1, "{logs}");
    let line = access[0].trim_start();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("\"POST /login HTTP/1.1\""), "{line}");
    assert!(line.contains(" route=login decision="), "{line}");
    assert!(!logs.contains("pw-secret-7"));
}
