//! Idle detection for one connection.
//!
//! hyper has no idle timeout for HTTP/2, and its HTTP/1 header-read deadline
//! only covers the wait for a request head. Wrapping the transport and noting
//! the time of its last byte in either direction covers both protocols with
//! one mechanism.
//!
//! An idle HTTP/1.1 connection rests: hyper's state is let go. hyper keeps
//! an 8 KiB read and an 8 KiB write buffer per HTTP/1 connection for the
//! connection's whole life, and offers no way to release them while it waits
//! for the next request. On a proxy that holds thousands of keep-alive
//! connections, most of them idle, those buffers are most of its memory
//! (nginx releases its own when a connection goes idle). So a connection
//! that has been silent for [`REST_AFTER`] between exchanges is taken back
//! from hyper (`into_parts`) and waits for its next byte with none of
//! hyper's state; that byte is handed to a new hyper connection ahead of the
//! rest ([`super::prefixed::Prefixed`]).
//!
//! Taking the transport back is safe only while hyper waits for a request
//! head and holds nothing else: the transport wrapper and the service note
//! what [`Activity::between_exchanges`] needs (every exchange ended, every
//! byte hyper wrote flushed), and bytes hyper had read but not parsed go
//! back in front of the transport too.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection last moved a byte, and whether it is between
/// exchanges. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct Activity {
    start: Instant,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    last_millis: AtomicU64,
    /// Exchanges begun and ended (the response's body dropped by hyper).
    begun: AtomicU32,
    ended: AtomicU32,
    /// Whether the last exchange began with a request body: hyper may still
    /// be reading it after the response has gone.
    bodied: AtomicBool,
    /// Whether the last write-side call on the transport was a flush that
    /// completed: hyper holds no byte it has not handed over.
    flushed: AtomicBool,
}

impl Activity {
    pub fn new() -> Self {
        let shared = Shared {
            flushed: AtomicBool::new(true),
            ..Shared::default()
        };
        Self {
            start: Instant::now(),
            shared: Arc::new(shared),
        }
    }

    /// Counts as activity now.
    pub fn touch(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.shared.last_millis.store(millis, Ordering::Relaxed);
    }

    /// When the connection last moved a byte.
    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.shared.last_millis.load(Ordering::Relaxed))
    }

    /// Notes a request handed to the service; the returned guard ends the
    /// exchange when dropped (with the response's body).
    pub fn begin(&self, with_body: bool) -> Exchange {
        self.shared.bodied.store(with_body, Ordering::Relaxed);
        self.shared.begun.fetch_add(1, Ordering::Relaxed);
        Exchange(self.shared.clone())
    }

    /// How many exchanges have begun.
    pub fn begun(&self) -> u32 {
        self.shared.begun.load(Ordering::Relaxed)
    }

    /// Whether hyper is waiting for the next request head and holds
    /// nothing else: every exchange ended, the last one without a request
    /// body it might still be reading, every written byte flushed.
    pub fn between_exchanges(&self) -> bool {
        let s = &self.shared;
        s.begun.load(Ordering::Relaxed) == s.ended.load(Ordering::Relaxed)
            && !s.bodied.load(Ordering::Relaxed)
            && s.flushed.load(Ordering::Relaxed)
    }

    /// Completes once the connection has been silent for `idle`, or for
    /// `rest_after` and may rest as `rest` says (never, for
    /// [`Rest::Never`]). One timer for both: the connection's watcher polls
    /// it each time the connection's task wakes, twice or more per request.
    pub async fn silence(&self, idle: Duration, rest_after: Duration, rest: Rest) -> Silence {
        let may_rest = || match rest {
            Rest::Never => false,
            Rest::WhenIdle => self.between_exchanges(),
            Rest::AfterExchange(n) => self.begun() != n && self.between_exchanges(),
        };
        loop {
            let now = Instant::now();
            let last = self.last();
            let idle_at = last + idle;
            if now >= idle_at {
                return Silence::Idle;
            }
            let wake = match rest {
                Rest::Never => idle_at,
                _ if now < last + rest_after => idle_at.min(last + rest_after),
                _ if may_rest() => return Silence::Rest,
                // Silent but busy (a slow response, a request body): look
                // again later, without spinning.
                _ => idle_at.min(now + rest_after),
            };
            tokio::time::sleep_until(wake).await;
        }
    }

    fn flushed(&self, flushed: bool) {
        self.shared.flushed.store(flushed, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        self.silence(limit, limit, Rest::Never).await;
    }
}

/// What a connection's silence calls for: see [`Activity::silence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// No byte has moved for the idle limit.
    Idle,
    /// Silent long enough, and between exchanges: it may rest.
    Rest,
}

/// Ends an exchange when dropped.
#[derive(Debug)]
pub struct Exchange(Arc<Shared>);

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// A transport that reports its reads and writes to an [`Activity`].
#[derive(Debug)]
pub struct ActivityIo<I> {
    inner: I,
    activity: Activity,
}

impl<I> ActivityIo<I> {
    pub fn new(inner: I, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ActivityIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if result.is_ready() {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ActivityIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity.flushed(false);
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if result.is_ready() {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.flushed(false);
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if result.is_ready() {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.flushed(matches!(result, Poll::Ready(Ok(()))));
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A connection closing is not one at rest.
        self.activity.flushed(false);
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

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

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_for_silence_since_the_last_byte() {
        let activity = Activity::new();
        let (client, server) = tokio::io::duplex(64);
        let mut io = ActivityIo::new(server, activity.clone());
        let mut client = client;

        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await.unwrap();
        let read_at = Instant::now();

        activity.idle_for(Duration::from_secs(10)).await;
        assert_eq!(Instant::now() - read_at, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_rests_between_exchanges_and_is_idle_otherwise() {
        let (idle, rest_after) = (Duration::from_secs(10), Duration::from_secs(2));
        let activity = Activity::new();
        let started = Instant::now();
        let silence = activity.silence(idle, rest_after, Rest::WhenIdle).await;
        assert_eq!(silence, Silence::Rest);
        assert_eq!(Instant::now() - started, rest_after);

        // An exchange in flight: silent, but never at rest; idle in the end.
        let exchange = activity.begin(false);
        activity.touch();
        let started = Instant::now();
        let silence = activity.silence(idle, rest_after, Rest::WhenIdle).await;
        assert_eq!(silence, Silence::Idle);
        assert_eq!(Instant::now() - started, idle);

        // Once it ends, not before the next exchange has begun.
        drop(exchange);
        activity.touch();
        let after = Rest::AfterExchange(activity.begun());
        let silence = activity.silence(idle, rest_after, after).await;
        assert_eq!(silence, Silence::Idle);
        activity.touch();
        drop(activity.begin(false));
        let started = Instant::now();
        let silence = activity.silence(idle, rest_after, after).await;
        assert_eq!(silence, Silence::Rest);
        assert_eq!(Instant::now() - started, rest_after);
    }
}
