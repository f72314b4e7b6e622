//! An idle HTTP/1.1 connection at rest: hyper's state let go.
//!
//! hyper keeps an 8 KiB read and an 8 KiB write buffer per HTTP/1
//! connection for the connection's whole life, and offers no way to release
//! them while it waits for the next request. On a proxy that holds
//! thousands of keep-alive connections, most of them idle, those buffers
//! are most of its memory (nginx releases its own when a connection goes
//! idle). So a connection that has been silent for [`REST_AFTER`] between
//! exchanges is taken back from hyper (`into_parts`) and waits for its next
//! byte with none of hyper's state; that byte is handed to a new hyper
//! connection ahead of the rest ([`Prefixed`]).
//!
//! Taking the transport back is safe only while hyper waits for a request
//! head and holds nothing else: [`super::idle::Activity::between_exchanges`]
//! says so, and bytes hyper had read but not parsed go back through
//! [`Prefixed`] too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::idle::Exchange;

/// Whether a connection may rest once it is between exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// HTTP/2 and the cleartext listener's detecting connections: their
    /// state (HPACK tables, settings) cannot be put down and picked up.
    Never,
    WhenIdle,
    /// Not before an exchange after the `n`th has begun: hyper was found
    /// holding part of a request head, and letting the connection rest
    /// again would restart hyper's head deadline each time.
    AfterExchange(u32),
}

/// How long an HTTP/1 connection stays silent between exchanges before it
/// rests. Long enough that a client's burst of requests (a page and its
/// assets, a login and its redirect) is served by one hyper connection;
/// short next to a keep-alive's life (`header_read_timeout`, 10 s by
/// default), so that an idle connection spends most of it at rest.
pub const REST_AFTER: Duration = Duration::from_secs(1);

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

/// A response body that ends its [`Exchange`] when hyper drops it: after
/// its last frame is written, or when the connection ends.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    _exchange: Exchange,
}

impl<B> Tracked<B> {
    pub fn new(body: B, exchange: Exchange) -> Self {
        Self {
            body,
            _exchange: exchange,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
