//! Bans that last and can be managed: the local snapshot across a restart,
//! an operator's reason and name, the ban covering an address, and the
//! `credgate bans` command against a running proxy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;

use crate::support::binary::{run, Process};
use crate::support::client::{admin, admin_json};
use crate::support::*;

const TOKEN: &str = ADMIN_TOKEN;
const WRONG: &str = "not-the-password";

/// A config for a proxy with a form login on `/login` that bans a client
/// at its second failure, with the admin token, no limits (these tests are
/// about bans), and `state_extra` in `[state]`; written to a file.
fn config_file(cert: &TestCert, shop: std::net::SocketAddr, state_extra: &str) -> PathBuf {
    let server = trusting_server_with_admin(cert);
    let toml = format!(
        "{}\n[[login]]\npath = \"/login\"\n\
         [limits]\nip = \"off\"\nsubnet = \"off\"\nusername = \"off\"\nglobal = \"off\"\n\
         [suspicion]\nmin_attempts = 2\nfailure_ratio = 0.5\n\
         [state]\n{state_extra}\n",
        config_toml(cert, shop, &server, "")
    );
    let path = cert.dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn snapshot_line(path: &Path) -> String {
    format!("ban_snapshot = \"{}\"", path.display())
}

async fn login_from(cert: &TestCert, proxy: &Process, from: &str) -> StatusCode {
    let client = TestClient::new(&cert.der, Version::Http1);
    let url = format!("https://127.0.0.1:{}/login", proxy.proxy.port());
    let answer = client
        .send(form_login(url, from, "alice@example.com", WRONG))
        .await;
    answer.status
}

async fn listed(admin_addr: std::net::SocketAddr) -> serde_json::Value {
    let url = format!("http://{admin_addr}/admin/bans");
    let (status, body) = admin("GET", &url, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn entry<'a>(bans: &'a serde_json::Value, target: &str) -> &'a serde_json::Value {
    bans.as_array()
        .and_then(|all| all.iter().find(|b| b["target"] == target))
        .unwrap_or_else(|| panic!("no ban on {target} in {bans}"))
}

const NETWORK_BAN: &str =
    r#"{"target": "198.51.100.0/24", "duration": "2h", "reason": "card testing", "by": "alice"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_bans_survive_a_restart_with_their_origin_and_reason() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let snapshot = cert.dir.path().join("bans.json");
    let config = config_file(&cert, shop.addr(), &snapshot_line(&snapshot));
    let mut first = Process::serve(&config);
    // An automatic ban: two failures.
    for _ in 0..2 {
        login_from(&cert, &first, "203.0.113.70").await;
    }
    assert_eq!(
        login_from(&cert, &first, "203.0.113.70").await,
        StatusCode::FORBIDDEN
    );
    // A manual one, with who and why.
    let url = format!("http://{}/admin/bans", first.admin);
    let (status, body) = admin_json("POST", &url, NETWORK_BAN.into(), TOKEN).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Written after the change, before any shutdown.
    let written = eventually(Duration::from_secs(15), || {
        std::fs::read_to_string(&snapshot)
            .is_ok_and(|s| s.contains("198.51.100.0/24") && s.contains("203.0.113.70"))
    })
    .await;
    assert!(written, "no snapshot after the bans: {}", first.logs());
    // The ban lines say where each ban came from.
    let logs = first.logs();
    let line = |message: &str| {
        logs.lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message} line in {logs}"))
            .to_owned()
    };
    let automatic = line("\"client banned\"");
    assert!(
        automatic.contains("\"origin\":\"automatic\""),
        "{automatic}"
    );
    assert!(automatic.contains("\"reason\":\"failures\""), "{automatic}");
    let manual = line("banned by an operator");
    for field in [
        "\"origin\":\"manual\"",
        "\"reason\":\"card testing\"",
        "\"by\":\"alice\"",
    ] {
        assert!(manual.contains(field), "{field} not in {manual}");
    }
    let (stopped, _) = first.stop();
    assert!(stopped.success());

    let second = Process::serve(&config);
    assert!(second.logs().contains("bans restored"), "{}", second.logs());
    let bans = listed(second.admin).await;
    assert_eq!(bans.as_array().map(Vec::len), Some(2), "{bans}");
    let automatic = entry(&bans, "203.0.113.70/32");
    assert_eq!(automatic["origin"], "automatic");
    assert_eq!(automatic["reason"], "failures");
    let manual = entry(&bans, "198.51.100.0/24");
    assert_eq!(manual["origin"], "manual");
    assert_eq!(manual["reason"], "card testing");
    assert_eq!(manual["by"], "alice");
    let left = manual["expires_in_seconds"].as_u64().unwrap();
    assert!((7000..=7200).contains(&left), "{manual}");
    // And they are enforced, not only listed.
    for banned in ["203.0.113.70", "198.51.100.9"] {
        assert_eq!(
            login_from(&cert, &second, banned).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        login_from(&cert, &second, "192.0.2.1").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_set_aside_and_the_proxy_starts_without_it() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let snapshot = cert.dir.path().join("bans.json");
    std::fs::write(&snapshot, "{\"version\":1,\"bans\":[{\"tar").unwrap();
    let config = config_file(&cert, shop.addr(), &snapshot_line(&snapshot));
    let mut proxy = Process::serve(&config);
    assert!(
        proxy
            .logs()
            .contains("starting without the snapshot's bans"),
        "{}",
        proxy.logs()
    );
    let aside = cert.dir.path().join("bans.json.corrupt");
    assert_eq!(
        std::fs::read_to_string(&aside).unwrap(),
        "{\"version\":1,\"bans\":[{\"tar"
    );
    assert_eq!(listed(proxy.admin).await, serde_json::json!([]));
    let url = format!("http://{}/admin/bans", proxy.admin);
    let (status, _) = admin_json("POST", &url, NETWORK_BAN.into(), TOKEN).await;
    assert_eq!(status, StatusCode::CREATED);
    let (stopped, _) = proxy.stop();
    assert!(stopped.success());
    // Written at shutdown at the latest, whole.
    let text = std::fs::read_to_string(&snapshot).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["bans"][0]["target"], "198.51.100.0/24", "{text}");
}

#[tokio::test]
async fn deleting_an_address_inside_a_banned_network_names_the_covering_ban() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = trusting_server_with_admin(&cert);
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), &server, "")).await;
    let url = proxy.admin_url("/admin/bans");
    let (status, body) = admin_json("POST", &url, NETWORK_BAN.into(), TOKEN).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let bans = {
        let (_, body) = admin("GET", &url, Some(TOKEN)).await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(entry(&bans, "198.51.100.0/24")["by"], "alice");

    let inside = proxy.admin_url("/admin/bans/198.51.100.7");
    let (status, body) = admin("DELETE", &inside, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let covering = &answer["covered_by"][0];
    assert_eq!(covering["target"], "198.51.100.0/24", "{body}");
    assert_eq!(covering["reason"], "card testing");
    assert_eq!(covering["origin"], "manual");
    assert!(covering["expires_at"].as_u64().unwrap() > 0);
    // Still banned: the conflict lifted nothing.
    let (status, body) = admin("GET", &inside, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let lookup: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(lookup["bans"][0]["target"], "198.51.100.0/24", "{body}");

    // An address banned itself and by its network: its own ban is lifted,
    // and the answer says what still refuses it.
    let single = r#"{"target": "198.51.100.8", "duration": "1h"}"#;
    assert_eq!(
        admin_json("POST", &url, single.into(), TOKEN).await.0,
        StatusCode::CREATED
    );
    let (status, body) = admin(
        "DELETE",
        &proxy.admin_url("/admin/bans/198.51.100.8"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["still_covered_by"][0]["target"], "198.51.100.0/24",
        "{body}"
    );

    let outside = proxy.admin_url("/admin/bans/192.0.2.7");
    assert_eq!(
        admin("DELETE", &outside, Some(TOKEN)).await.0,
        StatusCode::NOT_FOUND
    );
    let shouting = r#"{"target": "192.0.2.8", "duration": "1h", "reason": "a\nfake log line"}"#;
    let (status, _) = admin_json("POST", &url, shouting.into(), TOKEN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a control character");
}

/// Runs `credgate bans ARGS` against `admin` with the config's token.
fn bans_command(
    config: &Path,
    admin: std::net::SocketAddr,
    args: &[&str],
) -> (i32, String, String) {
    let url = format!("http://{admin}");
    let mut all = vec![
        "bans",
        "--config",
        config.to_str().unwrap(),
        "--admin-url",
        &url,
    ];
    all.extend_from_slice(args);
    let (status, out, err) = run(&all);
    (status.code().unwrap(), out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bans_command_manages_a_running_proxy() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let config = config_file(&cert, shop.addr(), "");
    let proxy = Process::serve(&config);
    let cli = |args: &[&str]| bans_command(&config, proxy.admin, args);

    let add = [
        "add",
        "198.51.100.0/24",
        "--duration",
        "2h",
        "--reason",
        "card testing",
        "--by",
        "alice",
    ];
    let (code, out, err) = cli(&add);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("banned 198.51.100.0/24 for 2h"), "{out}");

    let (code, out, err) = cli(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let bans: serde_json::Value = serde_json::from_str(&out).expect("bans list --json");
    let ban = entry(&bans, "198.51.100.0/24");
    assert_eq!(
        (&ban["origin"], &ban["reason"], &ban["by"]),
        (&"manual".into(), &"card testing".into(), &"alice".into())
    );
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("TARGET"), "{out}");
    assert!(
        out.contains("198.51.100.0/24  manual  card testing  alice"),
        "{out}"
    );

    let (code, out, err) = cli(&["lookup", "198.51.100.7"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("198.51.100.0/24") && out.contains("card testing"),
        "{out}"
    );
    let (code, out, _) = cli(&["lookup", "198.51.100.7", "--json"]);
    assert_eq!(code, 0);
    let found: serde_json::Value = serde_json::from_str(&out).expect("bans lookup --json");
    assert_eq!(found["bans"][0]["by"], "alice");

    // An address inside the network: the covering ban is named, nothing lifted.
    let (code, out, err) = cli(&["remove", "198.51.100.7"]);
    assert_eq!(code, 1);
    assert!(err.contains("covered by"), "{err}");
    assert!(out.contains("198.51.100.0/24"), "{out}");
    let (code, out, err) = cli(&["remove", "198.51.100.0/24"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lifted the ban on 198.51.100.0/24"), "{out}");
    let (code, out, _) = cli(&["lookup", "198.51.100.7"]);
    assert_eq!(code, 1);
    assert!(out.contains("not banned"), "{out}");
    let (code, out, _) = cli(&["list"]);
    assert_eq!((code, out.trim()), (0, "no bans in force"));

    // A wrong token, and nobody listening: clear errors, exit 1.
    let wrong = cert.dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-admin-token-0000").unwrap();
    let url = format!("http://{}", proxy.admin);
    let (status, _, err) = run(&[
        "bans",
        "--admin-url",
        &url,
        "--token-file",
        wrong.to_str().unwrap(),
        "list",
    ]);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("refused the token"), "{err}");
    assert!(
        !err.contains("not-the-admin-token"),
        "the token was printed"
    );
    let closed = closed_port();
    let url = format!("http://{}", closed.addr);
    let (status, _, err) = run(&[
        "bans",
        "--admin-url",
        &url,
        "--config",
        config.to_str().unwrap(),
        "list",
    ]);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("cannot reach the admin API"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_path_that_cannot_be_written_fails_the_start() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let missing = cert.dir.path().join("no-such-dir").join("bans.json");
    let config = config_file(&cert, shop.addr(), &snapshot_line(&missing));
    let mut child = crate::support::binary::credgate()
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("credgate started with a snapshot it cannot write");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("state.ban_snapshot"), "{err}");
    assert!(err.contains("cannot write the ban snapshot"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_stops_being_writable_is_retried_and_shown_in_a_gauge() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let dir = cert.dir.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let snapshot = dir.join("bans.json");
    let config = config_file(&cert, shop.addr(), &snapshot_line(&snapshot));
    let proxy = Process::serve(&config);
    let failing = || async {
        sample(
            &scrape(proxy.admin).await,
            "credgate_ban_snapshot_failing",
            &[],
        )
    };
    assert_eq!(failing().await, 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
    let url = format!("http://{}/admin/bans", proxy.admin);
    let (status, _) = admin_json("POST", &url, NETWORK_BAN.into(), TOKEN).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut seen = 0.0;
    for _ in 0..150 {
        seen = failing().await;
        if seen == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1.0, "{}", proxy.logs());
    // The log line is read from the process' stderr, which can trail the
    // gauge.
    let logged = eventually(Duration::from_secs(5), || {
        proxy.logs().contains("state: bans not saved")
    })
    .await;
    assert!(logged, "{}", proxy.logs());

    // Writable again: the retry writes the ban made meanwhile.
    std::fs::create_dir(&dir).unwrap();
    let written = eventually(Duration::from_secs(15), || {
        std::fs::read_to_string(&snapshot).is_ok_and(|s| s.contains("198.51.100.0/24"))
    })
    .await;
    assert!(written, "{}", proxy.logs());
    for _ in 0..150 {
        seen = failing().await;
        if seen == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 0.0);
}
