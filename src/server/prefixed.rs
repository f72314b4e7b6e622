//! A transport with bytes put back in front of it: the ClientHello, read
//! to fingerprint it before rustls sees it; what hyper had read of an HTTP/1
//! connection when it let go of it, and the byte that woke it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A transport that first yields `prefix`: bytes read from it earlier.
#[derive(Debug)]
pub struct Prefixed<I> {
    prefix: Bytes,
    inner: I,
}

impl<I> Prefixed<I> {
    pub fn new(inner: I) -> Self {
        Self {
            prefix: Bytes::new(),
            inner,
        }
    }

    /// Puts `bytes` back, ahead of anything still to be read.
    pub fn unread(&mut self, bytes: Bytes) {
        if self.prefix.is_empty() {
            self.prefix = bytes;
        } else if !bytes.is_empty() {
            self.prefix = [bytes, std::mem::take(&mut self.prefix)].concat().into();
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Read: give the memory back for the connection's lifetime.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unread_bytes_come_first_then_the_transport() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Prefixed::new(server);
        io.unread(Bytes::from_static(b"T / HTTP/1.1"));
        io.unread(Bytes::from_static(b"GE"));
        client.write_all(b"\r\n").await.unwrap();
        drop(client);
        let mut read = Vec::new();
        io.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_small_read_takes_the_prefix_in_pieces() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = Prefixed::new(server);
        io.unread(Bytes::from_static(b"abc"));
        let mut two = [0u8; 2];
        io.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        let mut one = [0u8; 1];
        io.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"c");
    }
}
