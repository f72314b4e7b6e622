//! What fingerprinting adds: JA4 of a ClientHello (reassembly, parse, two
//! SHA-256) per new TLS connection, beside a full in-memory rustls
//! handshake (TLS 1.3, X25519, ECDSA P-256) with the same provider; and per
//! request, resolving the fingerprint and recording a login attempt.
//!
//! ```sh
//! cargo bench --bench fingerprint
//! ```

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credgate::fingerprint::{client_hello, FingerprintSource, Fingerprints, Ja4, Records};
use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// A Chrome ClientHello (517 bytes, GREASE, 16 extensions) from the JA4
/// repository's captures.
const CHROME: &str = include_str!("../src/fingerprint/testdata/chrome_no_alpn.hex");

fn decode_hex(hex: &str) -> Vec<u8> {
    let hex = hex.trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex fixture"))
        .collect()
}

fn ja4(records: &[u8]) -> Ja4 {
    match client_hello::reassemble(records) {
        Ok(Records::Complete(message)) => Ja4::of_message(&message).expect("a valid hello"),
        other => panic!("fixture does not parse: {other:?}"),
    }
}

fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = credgate::tls::provider();
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(client), Arc::new(server))
}

/// One complete handshake, both sides, through memory.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut wire = Vec::with_capacity(4096);
    while c.is_handshaking() || s.is_handshaking() {
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let mut read = &wire[..];
        while !read.is_empty() {
            s.read_tls(&mut read).unwrap();
            s.process_new_packets().unwrap();
        }
        wire.clear();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        let mut read = &wire[..];
        while !read.is_empty() {
            c.read_tls(&mut read).unwrap();
            c.process_new_packets().unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let chrome = decode_hex(CHROME);
    assert_eq!(
        ja4(&chrome).as_str(),
        "t13d151400_8daaf6152771_de4a06bb82e3"
    );
    c.bench_function("ja4/chrome_client_hello", |b| {
        b.iter(|| ja4(black_box(&chrome)))
    });

    let (client, server) = configs();
    c.bench_function("tls/handshake_tls13_in_memory", |b| {
        b.iter(|| handshake(&client, &server))
    });

    let source = FingerprintSource::new(Some(http::HeaderName::from_static("x-ja4")));
    let chrome_ja4 = ja4(&chrome);
    let own = Some(chrome_ja4);
    let mut headers = http::HeaderMap::new();
    headers.insert("user-agent", http::HeaderValue::from_static("bench"));
    c.bench_function("request/resolve_fingerprint", |b| {
        b.iter(|| source.resolve(black_box(own), black_box(false), &mut headers))
    });

    let table = Fingerprints::new(Duration::from_secs(600));
    let now = Instant::now();
    let mut n = 0u32;
    c.bench_function("login/record_fingerprint", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(n));
            table.record(black_box(chrome_ja4), None, ip, Some(true), now)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
