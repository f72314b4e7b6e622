//! The ClientHello, read off the socket before rustls sees it, and handed
//! back to rustls byte for byte.
//!
//! rustls does not expose the extension order or the GREASE values that
//! JA4 needs, so the first handshake records are read here (at most
//! [`MAX_PREFIX`] bytes; the caller's handshake deadline bounds the time),
//! fingerprinted, and replayed in front of the rest of the stream.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::prefixed::Prefixed;
use crate::fingerprint::{client_hello, ClientHelloError, Ja4, Records, MAX_PREFIX};

/// Why a TLS connection ended before its first request.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error(transparent)]
    Hello(#[from] ClientHelloError),
    #[error("cannot read the ClientHello")]
    Read(#[source] io::Error),
    #[error("TLS handshake failed")]
    Handshake(#[source] io::Error),
}

/// Reads the records that carry the ClientHello; returns its JA4 and the
/// stream with every byte read so far put back in front.
pub async fn read<S>(mut stream: S) -> Result<(Ja4, Prefixed<S>), HelloError>
where
    S: AsyncRead + Unpin,
{
    // Most hellos fit one read of this size; a post-quantum key share or a
    // split hello takes another.
    let mut buf = Vec::with_capacity(2048);
    loop {
        let room = MAX_PREFIX - buf.len();
        let read = (&mut stream)
            .take(room as u64)
            .read_buf(&mut buf)
            .await
            .map_err(HelloError::Read)?;
        let ja4 = match client_hello::reassemble(&buf)? {
            Records::Complete(message) => Ja4::of_message(&message)?,
            // The cap on records and on the message length keeps a
            // complete hello under MAX_PREFIX; this is a safety net.
            Records::NeedMore if buf.len() >= MAX_PREFIX => {
                return Err(ClientHelloError::TooLarge { limit: MAX_PREFIX }.into())
            }
            Records::NeedMore if read == 0 => return Err(ClientHelloError::Incomplete.into()),
            Records::NeedMore => continue,
        };
        let mut replay = Prefixed::new(stream);
        replay.unread(buf.into());
        return Ok((ja4, replay));
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn the_hello_is_fingerprinted_and_replayed_unchanged() {
        // The smallest well-formed hello: no extensions, one cipher suite.
        let mut message = vec![1, 0, 0, 41, 3, 3];
        message.extend_from_slice(&[0; 32]);
        message.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let mut wire = vec![22, 3, 1, 0, message.len() as u8];
        wire.extend_from_slice(&message);
        wire.extend_from_slice(b"after");
        let (mut client, server) = tokio::io::duplex(64);
        let sent = wire.clone();
        tokio::spawn(async move {
            // Byte by byte: the reader must cope with any split.
            for b in sent {
                client.write_all(&[b]).await.unwrap();
            }
        });
        let (ja4, mut replay) = read(server).await.unwrap();
        assert_eq!(ja4.as_str(), "t12i010000_0f2cb44170f4_000000000000");
        let mut replayed = Vec::new();
        replay.read_to_end(&mut replayed).await.unwrap();
        assert_eq!(replayed, wire);
    }

    #[tokio::test]
    async fn a_connection_closed_mid_hello_is_incomplete() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
        drop(client);
        let err = read(server).await.unwrap_err();
        assert!(matches!(
            err,
            HelloError::Hello(ClientHelloError::Incomplete)
        ));
    }
}
