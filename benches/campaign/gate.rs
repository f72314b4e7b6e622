//! The real `credgate` binary as the simulator's subject: filters built with
//! its own `build-filter`, a config on defaults, started with `serve`, ready
//! when its admin `/readyz` says so.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// What the simulator adds to credgate's defaults: a login route, the
/// filters, a cleartext listener (the simulator plays the TLS-terminating
/// load balancer) and trust in that balancer's `X-Forwarded-For`.
fn base_config(dir: &Path, upstream: SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
listen_plain = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
tls_cert = "{dir}/cert.pem"
tls_key = "{dir}/key.pem"
trusted_proxies = ["127.0.0.1/32"]

[upstream]
url = "http://{upstream}"

[[login]]
path = "/login"
format = "form"
failure_status = [401]

[leaked]
pairs_filter = "{dir}/pairs.cgf"
passwords_filter = "{dir}/passwords.cgf"
"#,
        dir = dir.display()
    )
}

/// The generated config with the user's `--config` fragment merged in
/// (tables merge, values replace).
pub fn config(dir: &Path, upstream: SocketAddr, extra: Option<&str>) -> anyhow::Result<String> {
    let mut config: toml::Table = base_config(dir, upstream).parse()?;
    if let Some(extra) = extra {
        let extra: toml::Table = extra.parse().context("the --config fragment")?;
        merge(&mut config, extra);
    }
    Ok(toml::to_string(&config)?)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Writes a self-signed certificate for the TLS listener, which credgate
/// requires even though the simulator speaks to its cleartext one.
pub fn write_certificate(dir: &Path) -> anyhow::Result<()> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    std::fs::write(dir.join("cert.pem"), cert.cert.pem())?;
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem())?;
    Ok(())
}

/// Builds `dir/<name>.cgf` from `lines` with the binary's `build-filter`.
pub fn build_filter(dir: &Path, kind: &str, name: &str, lines: &[String]) -> anyhow::Result<()> {
    let input = dir.join(format!("{name}.txt"));
    std::fs::write(&input, lines.join("\n") + "\n")?;
    let format = if kind == "pairs" { "combo" } else { "plain" };
    let output = Command::new(env!("CARGO_BIN_EXE_credgate"))
        .args([
            "build-filter",
            "--kind",
            kind,
            "--format",
            format,
            // The rule a config that names none applies (`email`):
            // build-filter's own default is `auto`.
            "--username-normalization",
            "email",
            "--input",
        ])
        .arg(&input)
        .arg("--output")
        .arg(dir.join(format!("{name}.cgf")))
        .output()?;
    if !output.status.success() {
        bail!(
            "build-filter {kind}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A running `credgate serve`; killed when dropped.
pub struct Gate {
    child: Child,
    pub plain: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<LogTail>>,
}

/// The end of credgate's log, for an error message, and its warnings.
#[derive(Default)]
struct LogTail {
    last: Vec<String>,
    warnings: u64,
}

impl Gate {
    /// Starts `credgate serve --config PATH` and waits for its `listening`
    /// line (which names the bound addresses).
    pub fn start(config: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_credgate"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start credgate")?;
        let stderr = child.stderr.take().context("credgate's stderr")?;
        let log = Arc::new(Mutex::new(LogTail::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let tail = log.clone();
        // The access log is one line per request: read it all, or credgate
        // would block on a full pipe.
        std::thread::spawn(move || drain(stderr, &tail, &tx));
        let Ok(event) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            bail!(
                "credgate did not start:\n{}",
                log.lock().expect("log").text()
            );
        };
        let (plain, admin) = listening_addrs(&event)?;
        Ok(Self {
            child,
            plain,
            admin,
            log,
        })
    }

    /// Warnings and errors credgate logged so far.
    pub fn warnings(&self) -> u64 {
        self.log.lock().expect("log").warnings
    }

    /// The last lines credgate logged, for a failure report.
    pub fn log_tail(&self) -> String {
        self.log.lock().expect("log").text()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(
    stderr: impl std::io::Read,
    tail: &Mutex<LogTail>,
    listening: &std::sync::mpsc::Sender<serde_json::Value>,
) {
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["fields"]["message"] == "listening" || event["message"] == "listening" {
            let _ = listening.send(event.clone());
        }
        let mut tail = tail.lock().expect("log");
        if matches!(event["level"].as_str(), Some("WARN" | "ERROR")) {
            tail.warnings += 1;
        }
        tail.last.push(line);
        if tail.last.len() > 40 {
            tail.last.remove(0);
        }
    }
}

/// The cleartext and admin addresses of the `listening` event; `plain` is
/// logged in `Debug` form, `Some(127.0.0.1:PORT)`.
fn listening_addrs(event: &serde_json::Value) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let fields = if event["fields"].is_object() {
        &event["fields"]
    } else {
        event
    };
    let field = |key: &str| fields[key].as_str().unwrap_or_default().to_owned();
    let plain = field("plain");
    let plain = plain.trim_start_matches("Some(").trim_end_matches(')');
    let plain = plain
        .parse()
        .with_context(|| format!("plain address {plain:?}"))?;
    let admin = field("admin").parse().context("admin address")?;
    Ok((plain, admin))
}

impl LogTail {
    fn text(&self) -> String {
        self.last.join("\n")
    }
}

/// Polls the admin `/readyz` until it answers 200 (filters loaded, shop
/// reachable).
pub async fn wait_ready(http: &crate::browser::Http, admin: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{admin}/readyz");
    while Instant::now() < deadline {
        if let Ok((200, _)) = http.get_text(&url).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("credgate never became ready")
}

/// The counters of `/metrics` that say what credgate did: limits, bans,
/// attack mode, risk levels, decisions. Only non-zero series (attack mode
/// always).
pub async fn scrape(
    http: &crate::browser::Http,
    admin: SocketAddr,
) -> anyhow::Result<Vec<(String, f64)>> {
    const WANTED: [&str; 6] = [
        "credgate_rate_limited_total",
        "credgate_bans_total",
        "credgate_attack_mode",
        "credgate_login_risk_total",
        "credgate_requests_total",
        "credgate_login_outcomes_total",
    ];
    let (_, text) = http.get_text(&format!("http://{admin}/metrics")).await?;
    let series = text
        .lines()
        .filter(|line| WANTED.iter().any(|name| line.starts_with(name)))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .filter(|(name, value)| *value != 0.0 || name.starts_with("credgate_attack_mode"))
        .collect();
    Ok(series)
}

/// The temporary directory of one run's files.
pub fn workdir() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_owned();
    Ok((dir, path))
}
