//! `Upgrade` requests (WebSocket): the shop's `101` and the bytes after it
//! pass through, under the idle timeout; a login path never upgrades.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const HANDSHAKE: &str = "Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Reads a response head, byte by byte so that nothing after it is taken.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn proxy(server_extra: &str) -> (TestCert, credgate::demo::Shop, RunningProxy) {
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let toml = config_toml(&cert, shop.addr(), server_extra, "")
        + "\n[[login]]\npath = \"/login\"\nformat = \"form\"\n";
    let proxy = start_proxy(&toml).await;
    (cert, shop, proxy)
}

#[tokio::test]
async fn websocket_echo_passes_through_and_closes_when_idle() {
    let (cert, _shop, proxy) = proxy("idle_timeout = \"500ms\"").await;
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    tls.write_all(format!("GET /ws HTTP/1.1\r\n{HANDSHAKE}").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );

    for message in [&b"\x81\x05hello"[..], b"\x81\x05again"] {
        tls.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tls.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
    }

    // Silent past the idle timeout: the proxy closes the tunnel.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle tunnel stayed open");
}

#[tokio::test]
async fn a_login_path_never_upgrades() {
    let (cert, shop, proxy) = proxy("").await;
    let mut tls = raw_tls(proxy.addrs.proxy, &cert.der, &[b"http/1.1"]).await;
    tls.write_all(format!("GET /login HTTP/1.1\r\n{HANDSHAKE}").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(shop.login_requests(), 0);
    assert_eq!(shop.requests(), 0);
}
