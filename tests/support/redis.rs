//! A private `redis-server` per test, on a free port, never the one on
//! 6379. It must be installed (`.ci/run` installs it): a missing server
//! fails the test rather than skipping it. The state bench uses it too.
//!
//! The port is held for the server's whole life by a socket that is bound
//! but never listens: connections to it are refused while the server is
//! down, the kernel hands it to no other socket, and `redis-server`, which
//! binds with `SO_REUSEADDR`, can still take it. A server counts as up only
//! when its `INFO` names our child's process id, so a foreign listener on
//! the port can never pass for it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running `redis-server`; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    /// Bound, never listening: keeps the port ours while the server is down.
    _reservation: tokio::net::TcpSocket,
    child: Option<Child>,
    /// Certificate and key: TLS only, on `port`.
    tls: Option<(PathBuf, PathBuf)>,
    /// More `redis-server` arguments (a cluster node's).
    pub args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self::reserve();
        server.restart();
        server
    }

    /// A free port for a server that is not running yet ([`Self::restart`]
    /// starts it).
    pub fn reserve() -> Self {
        // Redis refuses `--port 0`: take a free port from the kernel and
        // keep it bound (see the module's doc).
        let reservation = tokio::net::TcpSocket::new_v4().expect("a socket");
        reservation.set_reuseaddr(true).expect("SO_REUSEADDR");
        reservation
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("a free port");
        let port = reservation.local_addr().expect("a bound port").port();
        Self {
            port,
            _reservation: reservation,
            child: None,
            tls: None,
            args: Vec::new(),
        }
    }

    /// A server that speaks only TLS (`rediss://`), with this certificate.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        let mut server = Self::reserve();
        server.tls = Some((cert.to_owned(), key.to_owned()));
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns true if and only if the server was started and not killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            Some((cert, key)) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(cert),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the Redis tests need it installed \
                     (apt-get install redis-server; .ci/run does this)"
                )
            });
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.info_pid() != Some(pid) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "redis-server exited: {exited:?}");
            assert!(
                Instant::now() < deadline,
                "redis-server (pid {pid}) did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one raw command (RESP inline) and returns the raw reply.
    pub fn command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut reply = vec![0u8; 65536];
        let n = stream.read(&mut reply).unwrap();
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    /// The number of keys (`DBSIZE`).
    pub fn keys(&self) -> u64 {
        let reply = self.command("DBSIZE");
        reply.trim().trim_start_matches(':').parse().unwrap()
    }

    /// The `process_id` that the server on our port reports in `INFO`,
    /// over TLS when the server speaks only TLS; None if nothing answers.
    fn info_pid(&self) -> Option<u32> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        let reply = match &self.tls {
            None => info(stream)?,
            Some((cert, _)) => info(tls_stream(stream, cert)?)?,
        };
        let line = reply.lines().find(|l| l.starts_with("process_id:"))?;
        line["process_id:".len()..].trim().parse().ok()
    }
}

/// Sends `INFO server` and reads the reply up to its `process_id` line.
fn info(mut stream: impl Read + Write) -> Option<String> {
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&reply);
        if let Some(at) = text.find("process_id:") {
            if text[at..].contains("\r\n") {
                return Some(text.into_owned());
            }
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
}

/// A TLS client over `stream` that trusts only `cert`.
fn tls_stream(
    stream: TcpStream,
    cert: &Path,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(cert).ok()?).ok()?;
    let config = rustls::ClientConfig::builder_with_provider(credgate::tls::provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").ok()?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    Some(rustls::StreamOwned::new(connection, stream))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
