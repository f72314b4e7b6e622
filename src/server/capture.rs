//! The first bytes a client sends after the TLS handshake, kept (bounded)
//! for the connection's HTTP fingerprint. hyper parses the same bytes as
//! they pass, but keeps neither the header names' case and order nor
//! HTTP/2's SETTINGS, WINDOW_UPDATE, PRIORITY frames and pseudo-header
//! order.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::fingerprint::http_stack::CAPTURE;
use crate::fingerprint::HttpFingerprint;

/// What a connection's client sent first, and, once its first request has
/// arrived, its HTTP fingerprint. Shared by the transport and the service.
#[derive(Debug, Default)]
pub struct Capture {
    bytes: Mutex<Vec<u8>>,
    /// Set once the fingerprint is taken or the bytes are at the cap: the
    /// transport then copies nothing more.
    done: AtomicBool,
    fingerprint: OnceLock<Option<HttpFingerprint>>,
}

impl Capture {
    /// The connection's HTTP fingerprint. The first call (at the first
    /// request: its head, or HTTP/2's first frames, have been read by then)
    /// computes it and frees the bytes; later ones return the same.
    pub fn fingerprint(&self) -> Option<HttpFingerprint> {
        *self.fingerprint.get_or_init(|| {
            self.done.store(true, Ordering::Relaxed);
            let bytes = std::mem::take(&mut *self.lock());
            HttpFingerprint::of(&bytes)
        })
    }

    fn keep(&self, read: &[u8]) {
        let mut bytes = self.lock();
        let room = CAPTURE.saturating_sub(bytes.len());
        bytes.extend_from_slice(&read[..read.len().min(room)]);
        if bytes.len() >= CAPTURE {
            self.done.store(true, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Plain bytes: a copy left half-done by a panic is still bytes.
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A transport that copies what it reads into a [`Capture`] until that has
/// enough.
#[derive(Debug)]
pub struct CaptureIo<I> {
    inner: I,
    capture: Arc<Capture>,
}

impl<I> CaptureIo<I> {
    pub fn new(inner: I, capture: Arc<Capture>) -> Self {
        Self { inner, capture }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for CaptureIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if !self.capture.done.load(Ordering::Relaxed) {
                self.capture.keep(&buf.filled()[before..]);
            }
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for CaptureIo<I> {
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
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn what_passes_is_kept_up_to_the_cap_and_fingerprinted_once() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let capture = Arc::new(Capture::default());
        let mut io = CaptureIo::new(server, capture.clone());
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        client.write_all(head).await.unwrap();
        let mut read = vec![0; head.len()];
        io.read_exact(&mut read).await.unwrap();
        assert_eq!(read, head, "the bytes pass unchanged");
        let first = capture.fingerprint();
        assert!(first.is_some());
        client
            .write_all(b"GET / HTTP/1.1\r\nX: b\r\n\r\n")
            .await
            .unwrap();
        let _ = io.read(&mut read).await.unwrap();
        assert_eq!(capture.fingerprint(), first, "the first request's");
        assert!(capture.lock().is_empty(), "nothing kept after");

        let capture = Arc::new(Capture::default());
        let mut io = CaptureIo::new(
            tokio::io::repeat(b'x').take(3 * CAPTURE as u64),
            capture.clone(),
        );
        let mut sink = Vec::new();
        io.read_to_end(&mut sink).await.unwrap();
        assert_eq!(sink.len(), 3 * CAPTURE);
        assert_eq!(capture.lock().len(), CAPTURE);
        assert_eq!(capture.fingerprint(), None);
    }
}
