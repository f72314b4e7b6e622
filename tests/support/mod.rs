//! Fixtures: a test certificate, the demo shop as upstream, credgate started
//! in-process or as the real binary, and TLS clients. Every listener binds
//! `127.0.0.1:0`.

#![allow(dead_code)] // each test module uses a different part

pub mod binary;
pub mod client;
pub mod customers;
pub mod platforms;
pub mod redis;
pub mod redis_cluster;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use credgate::demo::Shop;
use credgate::server::Addrs;
use credgate::{Config, Server};
use tokio_util::sync::CancellationToken;

pub use client::{get, raw_tls, sample, scrape, TestClient, Version};

/// A self-signed certificate for `localhost` and `127.0.0.1`, on disk.
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub der: Vec<u8>,
}

impl TestCert {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = Self::write_new(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
        Self { dir, der: cert }
    }

    /// Writes a fresh pair to the given paths; returns the certificate DER.
    pub fn write_new(cert_path: &std::path::Path, key_path: &std::path::Path) -> Vec<u8> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(cert_path, cert.cert.pem()).unwrap();
        std::fs::write(key_path, cert.key_pair.serialize_pem()).unwrap();
        cert.cert.der().to_vec()
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

pub async fn start_shop() -> Shop {
    Shop::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// An address that refuses connections for as long as this guard lives: a
/// socket bound to it that never listens, so no other test can take the
/// port in the meantime.
pub struct ClosedPort {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    ClosedPort {
        addr: socket.local_addr().unwrap(),
        _socket: socket,
    }
}

/// A complete config on ephemeral ports; `server_extra` and `upstream_extra`
/// are appended to their sections.
pub fn config_toml(
    cert: &TestCert,
    upstream: SocketAddr,
    server_extra: &str,
    upstream_extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
{server_extra}

[upstream]
url = "http://{upstream}"
{upstream_extra}

[log]
format = "json"
level = "debug"
"#,
        cert = cert.cert_path().display(),
        key = cert.key_path().display(),
    )
}

/// credgate running in this process; stops when dropped.
pub struct RunningProxy {
    pub addrs: Addrs,
    shutdown: CancellationToken,
}

impl RunningProxy {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addrs.proxy.port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs.admin)
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start_proxy(toml: &str) -> RunningProxy {
    let config = Config::from_toml(toml).unwrap();
    let server = Server::bind(&config).await.unwrap();
    let addrs = server.addrs();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    RunningProxy { addrs, shutdown }
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// A config on ephemeral ports with extra tables (`[[login]]`, `[leaked]`) at
/// the end.
pub fn config_with(cert: &TestCert, upstream: SocketAddr, tables: &str) -> String {
    format!("{}\n{tables}\n", config_toml(cert, upstream, "", ""))
}

/// Builds a filter of `kind` from `lines` (combo lines for pairs, plain
/// passwords for passwords) into `dir/name`, through the library's builder,
/// with the `email` username rule that a config without
/// `username_normalization` applies.
pub fn build_filter(
    dir: &std::path::Path,
    name: &str,
    kind: credgate::leaked::FilterKind,
    lines: &[&str],
) -> PathBuf {
    use credgate::filter_build::{build, BuildOptions, InputFormat};
    let input = dir.join(format!("{name}.txt"));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = dir.join(name);
    let mut options = BuildOptions::new(kind, vec![input], output.clone());
    options.normalization = credgate::username::UsernameNormalization::Email.into();
    options.format = match kind {
        credgate::leaked::FilterKind::Pairs => InputFormat::Combo,
        credgate::leaked::FilterKind::Passwords => InputFormat::Plain,
    };
    build(&options, &mut credgate::filter_build::progress::Silent).unwrap();
    output
}

/// The bearer token of every test proxy's admin API.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// `[server]` lines for a proxy that believes 127.0.0.1's `X-Forwarded-For`
/// (so that one test speaks for many client addresses) and takes
/// [`ADMIN_TOKEN`]; the token file is written beside the certificate.
pub fn trusting_server_with_admin(cert: &TestCert) -> String {
    let token_file = cert.dir.path().join("admin.token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    format!(
        "trusted_proxies = [\"127.0.0.0/8\"]\nadmin_token_file = \"{}\"",
        token_file.display()
    )
}

/// A form login to `url` with `username`/`password` fields, from `from`
/// (through the trusted `X-Forwarded-For`).
pub fn form_login(
    url: String,
    from: &str,
    user: &str,
    password: &str,
) -> http::Request<client::Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", user)
        .append_pair("password", password)
        .finish();
    http::Request::post(url)
        .header("x-forwarded-for", from)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(client::full(body))
        .unwrap()
}
