//! `credgate demo`: the real server on an embedded default, in front of an
//! in-process demo shop. The same shop is the upstream of the test suite.

mod shop;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{Config, UpstreamUrl};
use crate::filter_build::{self, BuildOptions};
use crate::leaked::FilterKind;
pub use shop::{Shop, ACCOUNTS};

/// The embedded default configuration; listeners, certificate, upstream and
/// filters are filled in at start.
pub const CONFIG: &str = include_str!("../config/demo.toml");
/// A synthetic breach corpus (combo lines) holding one demo account's pair.
const BREACH: &str = include_str!("../config/demo-breach.txt");
/// Common passwords, one of them a demo account's.
const PASSWORDS: &str = include_str!("../config/demo-passwords.txt");

/// A demo ready to serve: the shop is running, the certificate written.
pub struct Demo {
    pub config: Config,
    pub shop: Shop,
    /// The ephemeral certificate's files live as long as the demo.
    certs: tempfile::TempDir,
}

impl Demo {
    /// Starts the shop on an ephemeral port and writes a self-signed
    /// certificate for `localhost` and `127.0.0.1`.
    pub async fn prepare(listen: SocketAddr, admin_listen: SocketAddr) -> anyhow::Result<Self> {
        let shop = Shop::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("cannot start the demo shop")?;
        let certs = tempfile::tempdir().context("cannot create a directory for the demo files")?;
        write_self_signed(certs.path())?;
        let (pairs, passwords) = build_filters(certs.path())?;
        let mut config =
            Config::from_toml(CONFIG).context("the embedded demo config is invalid")?;
        config.server.listen = listen;
        config.server.admin_listen = admin_listen;
        config.server.tls_cert = certs.path().join("cert.pem");
        config.server.tls_key = certs.path().join("key.pem");
        config.leaked.pairs_filter = Some(pairs);
        config.leaked.passwords_filter = Some(passwords);
        config.upstream.url = format!("http://{}", shop.addr())
            .parse::<UpstreamUrl>()
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            config,
            shop,
            certs,
        })
    }

    pub fn cert_path(&self) -> PathBuf {
        self.certs.path().join("cert.pem")
    }

    /// What to paste into a terminal, once the listeners are bound.
    pub fn banner(&self, proxy: SocketAddr, admin: SocketAddr) -> String {
        let (user, right) = ACCOUNTS[0];
        let (bob, bobs) = ACCOUNTS[1];
        let (carol, carols) = ACCOUNTS[2];
        let cert = self.cert_path();
        let curl = format!("curl -sS --cacert {}", cert.display());
        let base = format!("https://{proxy}");
        let json = format!(r#"{{"username":"{user}","password":"{right}"}}"#);
        format!(
            "credgate demo is running.\n\
             \n  proxy (TLS):   {base}\n  admin:         http://{admin}\n  demo shop:     http://{shop}\n\
             \nTry it (another terminal):\n\n\
             # the shop's home page, through the proxy\n\
             {curl} {base}/\n\
             # what the shop receives: X-Forwarded-For, Forwarded, X-Forwarded-Proto\n\
             {curl} {base}/headers\n\
             # a login with the right password (200)\n\
             {curl} {base}/login -d username={user} -d password={right}\n\
             # a wrong password (401)\n\
             {curl} {base}/login -d username={user} -d password=not-my-password\n\
             # a pair from the demo breach: blocked (403), the shop never sees it\n\
             {curl} {base}/login -d username={bob} --data-urlencode 'password={bobs}'\n\
             # a password from the breach: let through, annotated for the shop (200)\n\
             {curl} {base}/login -d username={carol} --data-urlencode 'password={carols}'\n\
             # the same login as JSON, over HTTP/2\n\
             {curl} --http2 {base}/login -H 'content-type: application/json' -d '{json}'\n\
             # the metrics\n\
             curl -sS http://{admin}/metrics\n\
             \nStop with Ctrl-C.\n",
            shop = self.shop.addr(),
        )
    }
}

/// Builds the demo's pairs and passwords filters into `dir`.
fn build_filters(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut built = Vec::new();
    for (kind, name, text) in [
        (FilterKind::Pairs, "breach", BREACH),
        (FilterKind::Passwords, "passwords", PASSWORDS),
    ] {
        let input = dir.join(format!("{name}.txt"));
        std::fs::write(&input, text)?;
        let output = dir.join(format!("{name}.cgf"));
        let options = BuildOptions::new(kind, vec![input], output.clone());
        filter_build::build(&options, &mut filter_build::progress::Silent)
            .with_context(|| format!("cannot build the demo {kind} filter"))?;
        built.push(output);
    }
    let passwords = built.pop().unwrap_or_default();
    let pairs = built.pop().unwrap_or_default();
    Ok((pairs, passwords))
}

fn write_self_signed(dir: &Path) -> anyhow::Result<()> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert =
        rcgen::generate_simple_self_signed(names).context("cannot generate a certificate")?;
    std::fs::write(dir.join("cert.pem"), cert.cert.pem())?;
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem())?;
    Ok(())
}
