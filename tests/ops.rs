//! The ops kit against the real proxy: every metric that the Grafana
//! dashboard and the Prometheus alerts query is exported after a mixed
//! workload; the dashboard and the rules are well formed (promtool checks the
//! rules and a real scrape); every alert's runbook exists; and
//! `credgate healthcheck` through the binary.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use http::{Request, StatusCode};
use serde_json::Value;

use credgate::leaked::FilterKind;

use crate::support::client::{admin, Body};
use crate::support::*;

const TOKEN: &str = ADMIN_TOKEN;
const WRONG: &str = "not-the-password";
// The demo shop's accounts: bob's pair is in the test breach, carol's password
// is (with another username), alice is clean.
const ALICE: (&str, &str) = ("alice@example.com", "wonderland-42");
const BOB: (&str, &str) = ("bob@example.com", "correct horse battery staple");
const CAROL: (&str, &str) = ("carol@example.com", "Tr0ub4dor&3");

const DASHBOARD: &str = "config/grafana/credgate.json";
const ALERTS: &str = "config/prometheus/alerts.yml";
const ALERT_TESTS: [&str; 2] = [
    "config/prometheus/alerts_test.yml",
    "config/prometheus/filter_age_test.yml",
];
const OPERATIONS: &str = "docs/operations.md";

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A proxy that trusts 127.0.0.1's `X-Forwarded-For` (so that one test speaks
/// for many clients), with a form login on `/login`, both filters (leaked
/// pairs and passwords annotated, so that a leaked pair can log in), a
/// username limit, quick bans and a short upstream timeout.
async fn protected_proxy(cert: &TestCert, shop: std::net::SocketAddr) -> RunningProxy {
    let dir = cert.dir.path();
    let pairs = build_filter(
        dir,
        "pairs.cgf",
        FilterKind::Pairs,
        &[
            "someone@example.net:123456",
            &format!("{}:{}", BOB.0, BOB.1),
        ],
    );
    let passwords = build_filter(dir, "passwords.cgf", FilterKind::Passwords, &[CAROL.1]);
    let server = trusting_server_with_admin(cert);
    let tables = format!(
        r#"
[[login]]
path = "/login"

[leaked]
pairs_filter = "{pairs}"
passwords_filter = "{passwords}"
on_leaked_pair = "annotate"
on_leaked_password = "annotate"

[limits]
username = {{ rate = "1/min", burst = 2 }}

[suspicion]
min_attempts = 3
failure_ratio = 0.6
ban = ["1h"]
"#,
        pairs = pairs.display(),
        passwords = passwords.display(),
    );
    let toml = config_toml(cert, shop, &server, "request_timeout = \"300ms\"");
    start_proxy(&format!("{toml}\n{tables}")).await
}

fn login(proxy: &RunningProxy, from: &str, (user, password): (&str, &str)) -> Request<Body> {
    form_login(proxy.url("/login"), from, user, password)
}

/// One login attempt from `from`: the status it got.
async fn attempt(
    client: &TestClient,
    proxy: &RunningProxy,
    from: &str,
    credentials: (&str, &str),
) -> StatusCode {
    client.send(login(proxy, from, credentials)).await.status
}

/// Clean logins, wrong passwords, a leaked pair that logs in, a leaked
/// password, a throttled attempt, a ban, an upstream timeout and a reload.
async fn mixed_workload(cert: &TestCert, proxy: &RunningProxy) {
    let client = &TestClient::new(&cert.der, Version::Http1);
    assert_eq!(
        attempt(client, proxy, "192.0.2.1", ALICE).await,
        StatusCode::OK
    );
    let leaked_pair = attempt(client, proxy, "192.0.2.2", BOB).await;
    assert_eq!(leaked_pair, StatusCode::OK, "annotated, not blocked");
    assert_eq!(
        attempt(client, proxy, "192.0.2.3", CAROL).await,
        StatusCode::OK
    );

    // One username from three addresses: the third is over the username limit.
    let dave = ("dave@example.com", WRONG);
    for from in ["192.0.2.4", "192.0.2.5"] {
        let failed = attempt(client, proxy, from, dave).await;
        assert_eq!(failed, StatusCode::UNAUTHORIZED);
    }
    let throttled = attempt(client, proxy, "192.0.2.6", dave).await;
    assert_eq!(throttled, StatusCode::TOO_MANY_REQUESTS);

    // One address failing every attempt is banned at its third failure
    // (min_attempts = 3).
    for i in 0..4 {
        let user = format!("victim{i}@example.com");
        let status = attempt(client, proxy, "203.0.113.9", (&user, WRONG)).await;
        let expected = match i {
            3 => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(status, expected, "attempt {}", i + 1);
    }

    let slow = client.get(&proxy.url("/slow?ms=2000")).await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);

    let (reloaded, report) = admin("POST", &proxy.admin_url("/admin/reload"), Some(TOKEN)).await;
    assert_eq!(reloaded, StatusCode::OK, "{report}");
}

/// Metric names in `text`: `credgate_*` and `process_*`.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let name = regex::Regex::new(r"\b(?:credgate|process)_[a-z_]+").unwrap();
    name.find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// Returns true if and only if `name` is in the scrape, where a histogram's
/// `_bucket` series are reported under the histogram's own name.
fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix));
    exported.contains(name) || base.is_some_and(|base| exported.contains(base))
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = protected_proxy(&cert, shop.addr()).await;
    mixed_workload(&cert, &proxy).await;

    let (status, text) = get(&proxy.admin_url("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    // The workload did reach every part it was meant to.
    for (name, labels) in [
        ("credgate_login_attempts_total", &[("verdict", "clean")][..]),
        (
            "credgate_login_attempts_total",
            &[("verdict", "leaked_password")],
        ),
        (
            "credgate_login_outcomes_total",
            &[("outcome", "success"), ("verdict", "leaked_pair")],
        ),
        ("credgate_rate_limited_total", &[("limit", "username")]),
        ("credgate_bans_total", &[("reason", "failures")]),
        ("credgate_upstream_errors_total", &[("kind", "timeout")]),
        (
            "credgate_filter_reloads_total",
            &[("filter", "pairs"), ("result", "success")],
        ),
        (
            "credgate_tls_certificate_reloads_total",
            &[("result", "success")],
        ),
    ] {
        assert!(
            sample(&scrape, name, labels) >= 1.0,
            "{name}{labels:?} is 0"
        );
    }

    let exported: BTreeSet<String> = scrape.samples.iter().map(|s| s.metric.clone()).collect();
    for file in [DASHBOARD, ALERTS] {
        let referenced = referenced_metrics(&repo_file(file));
        assert!(referenced.len() >= 5, "{file}: too few metrics found");
        let missing: Vec<_> = referenced
            .iter()
            .filter(|name| !is_exported(name, &exported))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} queries metrics that /metrics lacks: {missing:?}"
        );
    }

    let checked = promtool(&["check", "metrics"], Some(&text));
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}",
        report(&checked)
    );
}

/// Every metric the README's table names is exported after the mixed
/// workload; the gauges hold the values the workload implies; and no label,
/// nor anything else in the scrape, carries an address, a username or a
/// password that the workload used.
#[tokio::test]
async fn every_metric_the_readme_names_is_exported_with_true_gauges_and_no_secrets() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let started = unix_now();
    let proxy = protected_proxy(&cert, shop.addr()).await;
    mixed_workload(&cert, &proxy).await;
    let reloaded = unix_now();

    let readme = repo_file("README.md");
    let table = regex::Regex::new(r"(?m)^\| `((?:credgate|process)_[a-z_*]+)`").unwrap();
    let named: Vec<&str> = table
        .captures_iter(&readme)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert!(named.len() >= 18, "{named:?}");

    // The state gauges are updated every few seconds.
    let admin = proxy.addrs.admin;
    let mut scrape = crate::support::scrape(admin).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sample(&scrape, "credgate_bans_active", &[]) != 1.0
        || sample(&scrape, "credgate_tracked_clients", &[]) != 6.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "bans_active {}, tracked_clients {}",
            sample(&scrape, "credgate_bans_active", &[]),
            sample(&scrape, "credgate_tracked_clients", &[])
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        scrape = crate::support::scrape(admin).await;
    }
    let exported: BTreeSet<String> = scrape.samples.iter().map(|s| s.metric.clone()).collect();
    for name in named {
        let found = match name.strip_suffix('*') {
            Some(prefix) => [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_open_fds",
            ]
            .iter()
            .all(|n| n.starts_with(prefix) && exported.contains(*n)),
            None => is_exported(name, &exported),
        };
        assert!(found, "the README names {name}, /metrics lacks it");
    }
    // One ban in force (203.0.113.9); six clients whose attempts reached
    // the shop (192.0.2.1 to .5 and 203.0.113.9; the throttled .6 did not).
    assert_eq!(sample(&scrape, "credgate_bans_active", &[]), 1.0);
    assert_eq!(sample(&scrape, "credgate_tracked_clients", &[]), 6.0);
    for filter in ["pairs", "passwords"] {
        let labels = [("filter", filter)];
        let loaded = sample(&scrape, "credgate_filter_loaded_timestamp_seconds", &labels);
        assert!(
            (started as f64..=reloaded as f64 + 1.0).contains(&loaded),
            "{filter} loaded at {loaded}, not in {started}..={reloaded}"
        );
    }
    assert_eq!(
        sample(&scrape, "credgate_filter_items", &[("filter", "pairs")]),
        2.0
    );
    assert_eq!(
        sample(&scrape, "credgate_filter_items", &[("filter", "passwords")]),
        1.0
    );

    let (_, text) = get(&proxy.admin_url("/metrics")).await;
    let secrets = [
        ALICE,
        BOB,
        CAROL,
        ("dave@example.com", WRONG),
        ("victim0@example.com", "203.0.113.9"),
    ];
    for (user, password) in secrets {
        for secret in [user, password, user.split('@').next().unwrap()] {
            assert!(!text.contains(secret), "/metrics carries {secret}");
        }
    }
    for sample in &scrape.samples {
        for (label, value) in sample.labels.iter() {
            assert!(
                !value.contains("192.0.2.") && !value.contains("127.0.0.1"),
                "{label}={value} carries an address"
            );
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every panel, also inside rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested);
        }
        if panel["type"] != "row" {
            all.push(panel);
        }
    }
    all
}

#[test]
fn the_dashboard_parses_and_every_panel_queries_something() {
    let dashboard: Value = serde_json::from_str(&repo_file(DASHBOARD)).unwrap();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for name in ["datasource", "job", "instance"] {
        assert!(variables.contains(&name), "no ${name} variable");
    }
    let panels = panels(&dashboard);
    assert!(panels.len() >= 15, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        // The datasource is the variable, so that the import works anywhere.
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let exprs: Vec<&str> = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"))
            .iter()
            .filter_map(|t| t["expr"].as_str())
            .filter(|e| !e.trim().is_empty())
            .collect();
        assert!(!exprs.is_empty(), "{title}: no query");
    }
}

/// GitHub's anchors of a Markdown file's headings (outside code blocks).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let Some(heading) = line.strip_prefix('#').filter(|_| !in_code) else {
            continue;
        };
        let slug = heading
            .trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.insert(slug);
    }
    anchors
}

#[test]
fn the_operators_guide_links_to_its_own_headings() {
    let guide = repo_file(OPERATIONS);
    let anchors = anchors(&guide);
    let links: Vec<&str> = guide
        .split("](#")
        .skip(1)
        .map(|rest| &rest[..rest.find(')').unwrap()])
        .collect();
    assert!(links.len() > 10, "{} links", links.len());
    for link in links {
        assert!(
            anchors.contains(link),
            "{OPERATIONS} links to a missing #{link}"
        );
    }
}

#[test]
fn every_alert_has_a_summary_and_a_runbook_that_exists() {
    let rules = repo_file(ALERTS);
    let anchors = anchors(&repo_file(OPERATIONS));
    let alerts: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    for alert in alerts {
        let name = alert.lines().next().unwrap().trim();
        let has = |key: &str| alert.lines().any(|l| l.trim().starts_with(key));
        assert!(has("summary: "), "{name}: no summary");
        let runbook = alert
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook: "))
            .unwrap_or_else(|| panic!("{name}: no runbook"));
        let anchor = runbook
            .strip_prefix(&format!("{OPERATIONS}#"))
            .unwrap_or_else(|| panic!("{name}: the runbook is not in {OPERATIONS}: {runbook}"));
        assert!(
            anchors.contains(anchor),
            "{name}: {OPERATIONS} has no #{anchor}"
        );
    }
    let checked = promtool(&["check", "rules", ALERTS], None);
    assert!(
        checked.status.success(),
        "promtool check rules:\n{}",
        report(&checked)
    );
}

/// Each alert fires on the pattern it is for and stays quiet on ordinary
/// traffic: the unit tests beside the rules.
#[test]
fn the_alerts_pass_their_promtool_unit_tests() {
    let tested = promtool(&["test", "rules", ALERT_TESTS[0], ALERT_TESTS[1]], None);
    assert!(
        tested.status.success(),
        "promtool test rules:\n{}",
        report(&tested)
    );
}

/// Runs promtool in the repository, `stdin` piped in. A missing promtool
/// fails the test: the checks it makes are part of the suite.
fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: run .ci/run, which installs it \
             (Debian's `prometheus` package), or `apt-get install prometheus`"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn report(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `credgate healthcheck --url URL`, run off the async runtime so that the
/// in-process proxy keeps serving while the binary waits for it.
async fn healthcheck(url: String) -> (std::process::ExitStatus, String, String) {
    tokio::task::spawn_blocking(move || binary::run(&["healthcheck", "--url", &url]))
        .await
        .unwrap()
}

#[tokio::test]
async fn healthcheck_exits_zero_when_live_and_one_otherwise() {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let proxy = start_proxy(&config_toml(&cert, shop.addr(), "", "")).await;

    let (status, out, _) = healthcheck(proxy.admin_url("/healthz")).await;
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.ends_with("/healthz: ok\n"), "{out}");

    let (status, _, err) = healthcheck(proxy.admin_url("/nope")).await;
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("answered 404 Not Found"), "{err}");

    let port = closed_port();
    let closed = format!("http://{}/healthz", port.addr);
    let (status, _, err) = healthcheck(closed).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        err.starts_with("unhealthy: ") && err.contains("request failed"),
        "{err}"
    );

    let (_, help, _) = tokio::task::spawn_blocking(|| binary::run(&["healthcheck", "--help"]))
        .await
        .unwrap();
    assert!(help.contains(credgate::healthcheck::DEFAULT_URL), "{help}");
}
