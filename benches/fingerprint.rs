//! What fingerprinting adds: JA4 of a ClientHello (reassembly, parse, two
//! SHA-256) per new TLS connection, beside a full in-memory rustls
//! handshake (TLS 1.3, X25519, ECDSA P-256) with the same provider; the
//! HTTP fingerprint of a connection's first bytes; and per request,
//! resolving the fingerprint, the lists, and per login the fingerprint
//! limit, the tool signal and recording the attempt.
//!
//! ```sh
//! cargo bench --bench fingerprint
//! ```

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credgate::client_ip::ClientIp;
use credgate::config::{Limit, Limits, ToolFingerprint};
use credgate::fingerprint::{
    client_hello, FingerprintLists, FingerprintReputation, FingerprintSource, Fingerprints,
    HttpFingerprint, Ja4, Records,
};
use credgate::rate_limit::{AttemptKeys, Limiters, UsernameKey};
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

    http_fingerprints(c);
    per_login(c, chrome_ja4);
}

/// A browser's first request head, and an HTTP/2 client's first frames.
fn http_fingerprints(c: &mut Criterion) {
    let h1 = b"POST /login HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive\r\n\
        Content-Length: 41\r\nCache-Control: max-age=0\r\nsec-ch-ua: \"Chromium\";v=\"131\"\r\n\
        sec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: \"Linux\"\r\nOrigin: https://shop.example\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nUpgrade-Insecure-Requests: 1\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0\r\n\
        Accept: text/html,application/xhtml+xml\r\nSec-Fetch-Site: same-origin\r\n\
        Sec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\nSec-Fetch-Dest: document\r\n\
        Referer: https://shop.example/login\r\nAccept-Encoding: gzip, deflate, br\r\n\
        Accept-Language: en-GB,en;q=0.9\r\nCookie: session=abc\r\n\r\n";
    c.bench_function("connection/http_fingerprint_h1_browser_head", |b| {
        b.iter(|| HttpFingerprint::of(black_box(h1)))
    });
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    };
    let settings: Vec<u8> = [(1u16, 65536u32), (2, 0), (4, 6291456), (6, 262144)]
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect();
    h2.extend(frame(4, 0, 0, &settings));
    h2.extend(frame(8, 0, 0, &15663105u32.to_be_bytes()));
    let mut block = vec![0x83, 0x41, 12];
    block.extend(b"shop.example");
    block.extend([0x87, 0x44, 6]);
    block.extend(b"/login");
    block.extend([0x7a, 4]);
    block.extend(b"Mozi");
    h2.extend(frame(1, 0x4, 1, &block));
    assert_eq!(
        HttpFingerprint::of(&h2).unwrap().as_str(),
        "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p"
    );
    c.bench_function("connection/http_fingerprint_h2_first_frames", |b| {
        b.iter(|| HttpFingerprint::of(black_box(&h2)))
    });
}

/// What a login pays: the deny list, the fingerprint limit (admitted, then
/// refunded: a success), and the tool signal.
fn per_login(c: &mut Criterion, ja4: Ja4) {
    let other = Ja4::parse("t13d1517h2_8daaf6152771_b0da82dd1658").unwrap();
    let lists = FingerprintLists::new(&[other.to_string()], &[other.to_string()]);
    c.bench_function("request/fingerprint_lists", |b| {
        b.iter(|| lists.denied(black_box(Some(ja4))) || lists.allowed(black_box(Some(ja4))))
    });

    let limit = Limit {
        rate: "60/min".parse().unwrap(),
        burst: 30.try_into().unwrap(),
    };
    let keyed = |fingerprint: Option<Limit>| Limits {
        ip: Some(limit),
        subnet: None,
        username: None,
        global: None,
        all: None,
        fingerprint,
    };
    let keys = |fingerprint| AttemptKeys {
        client: ClientIp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        username: UsernameKey(7),
        fingerprint,
        known_device: false,
    };
    for (name, limits) in [
        ("login/limits_ip_only", keyed(None)),
        ("login/limits_ip_and_fingerprint", keyed(Some(limit))),
    ] {
        let limiters = Limiters::new(&limits, 1_000_000);
        let keys = keys(Some(ja4));
        c.bench_function(name, |b| {
            b.iter(|| {
                let _ = limiters.admit(black_box(&keys));
                limiters.refund(black_box(&keys));
            })
        });
    }

    let table = Fingerprints::new(Duration::from_secs(600));
    let now = Instant::now();
    for n in 0..1000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(n));
        table.record(ja4, None, ip, Some(n % 10 != 0), now);
    }
    let rule = ToolFingerprint {
        min_attempts: 50,
        min_addresses: 10,
        failure_ratio: 0.8,
    };
    let reputation = FingerprintReputation::new(table, Some(rule), FingerprintLists::default());
    assert!(reputation.is_tool(Some(ja4), now));
    c.bench_function("login/tool_fingerprint_signal", |b| {
        b.iter(|| reputation.is_tool(black_box(Some(ja4)), now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
