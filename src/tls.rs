//! TLS for the listener: rustls from PEM files, ALPN, certificate reload.
//!
//! The certificate sits behind an [`ArcSwap`] inside a certificate resolver,
//! so a reload changes what *new* handshakes present while every open
//! connection keeps the session it already has: nothing is dropped.
//!
//! One crypto provider (ring) is chosen explicitly and handed to every rustls
//! builder; nothing relies on a process-wide default provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub mod validity;

/// The crypto provider of the whole process: ring's, with its random bytes
/// drawn from a generator in user space.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        secure_random: &ThreadRandom,
        ..rustls::crypto::ring::default_provider()
    })
}

/// rustls's random bytes (each handshake's server random; each session
/// ticket's nonce, identity and age offset, two tickets a handshake) from
/// the thread's ChaCha12 generator, which the operating system seeds and
/// reseeds (`rand::rng`). ring's own makes one `getrandom` system call per
/// fill, eight per new TLS connection in all; with this one a connection
/// makes one, as OpenSSL's generator calls the kernel only to reseed. Like
/// ring's, it fails only if the kernel cannot give entropy at all (rand
/// then panics at a thread's first draw, where ring would fail the
/// handshake).
#[derive(Debug)]
struct ThreadRandom;

impl rustls::crypto::SecureRandom for ThreadRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        rand::RngCore::fill_bytes(&mut rand::rng(), buf);
        Ok(())
    }
}

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read the certificate", path.display())]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no certificate found in the file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: cannot read the private key", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: the key is unusable or does not match the certificate", path.display())]
    Mismatch {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the TLS configuration")]
    Config(#[source] rustls::Error),
}

impl TlsError {
    /// The configuration key naming the file at fault.
    pub fn config_key(&self) -> &'static str {
        match self {
            Self::Certificate { .. } | Self::NoCertificate { .. } => "server.tls_cert",
            Self::Key { .. } | Self::Mismatch { .. } => "server.tls_key",
            Self::Config(_) => "server",
        }
    }
}

/// The server's certificate and key, reloadable from their files.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

// === impl CertStore ===

impl CertStore {
    /// Loads the certificate chain and key; fails if either is unreadable or
    /// if they do not belong together.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let key = read_certified_key(cert_path, key_path, &provider)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: ArcSwap::from_pointee(key),
        })
    }

    /// When the serving certificate expires; `None` if its DER does not say.
    pub fn not_after(&self) -> Option<SystemTime> {
        let key = self.current.load();
        validity::not_after(key.cert.first()?.as_ref())
    }

    /// Re-reads both files. On error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_certified_key(&self.cert_path, &self.key_path, &self.provider)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// The rustls configuration for the proxy listener: TLS 1.2 and 1.3, ALPN
    /// `h2` then `http/1.1`, no 0-RTT (a replayed login must not be
    /// accepted), certificates from this store.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.max_early_data_size = 0;
        config.send_half_rtt_data = false;
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_err = |source| TlsError::Certificate {
        path: cert_path.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Key {
        path: key_path.to_owned(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Mismatch {
        path: key_path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::SecureRandom as _;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let priv_key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, key.cert.pem()).unwrap();
        std::fs::write(&priv_key, key.key_pair.serialize_pem()).unwrap();
        (cert, priv_key)
    }

    #[test]
    fn loads_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a.test");
        let store = Arc::new(CertStore::load(&cert, &key, provider()).unwrap());
        let before = store.current.load_full().cert[0].clone();
        store.server_config().unwrap();

        let (cert_b, key_b) = write_pair(dir.path(), "b.test");
        std::fs::copy(cert_b, &cert).unwrap();
        std::fs::copy(key_b, &key).unwrap();
        store.reload().unwrap();
        assert_ne!(store.current.load_full().cert[0], before);
    }

    #[test]
    fn failed_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a.test");
        let store = CertStore::load(&cert, &key, provider()).unwrap();
        let before = store.current.load_full().cert[0].clone();
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(matches!(
            store.reload(),
            Err(TlsError::NoCertificate { .. })
        ));
        assert_eq!(store.current.load_full().cert[0], before);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path(), "a.test");
        let (_, other_key) = write_pair(dir.path(), "b.test");
        let err = CertStore::load(&cert, &other_key, provider()).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = CertStore::load(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
            provider(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn random_bytes_come_from_the_thread_generator_and_differ_per_fill() {
        let provider = provider();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        provider.secure_random.fill(&mut a).unwrap();
        provider.secure_random.fill(&mut b).unwrap();
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b);
        // Filled in one thread, drawn in another: each has its own stream.
        let other = std::thread::spawn(|| {
            let mut c = [0u8; 32];
            ThreadRandom.fill(&mut c).unwrap();
            c
        })
        .join()
        .unwrap();
        assert!(other != a && other != b);
    }
}
