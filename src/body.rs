//! The body of every response the proxy listener sends, and of every request
//! it forwards: the peer's, streamed, or one held whole (an inspected login,
//! or one of our own responses); and a request body not yet read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Version;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A streamed body from a peer, or bytes credgate holds.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// At most this much of a refused HTTP/2 request's body is read and thrown
/// away, within [`DRAIN_TIME`]; past either, the stream is reset.
const DRAIN_BYTES: usize = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request body that no stage has taken yet.
///
/// A request refused before its body is read would drop the body with the
/// request, before the refusal is sent. On HTTP/2 that resets the stream
/// (`RST_STREAM(CANCEL)`), and clients such as curl then report a stream
/// error instead of our 403 or 429. So an unread HTTP/2 body is drained in
/// the background, bounded in size and time: the response goes out first,
/// and the stream ends cleanly. An HTTP/1 body is simply dropped; hyper
/// closes the connection after the response.
#[derive(Debug)]
pub struct Unread {
    body: Option<Incoming>,
    drain: bool,
}

impl Unread {
    pub fn new(body: Incoming, version: Version) -> Self {
        Self {
            body: Some(body),
            drain: version == Version::HTTP_2,
        }
    }

    /// The body, for a stage that reads or forwards it.
    pub fn take(mut self) -> Incoming {
        self.body
            .take()
            .expect("an Unread holds its body until taken")
    }
}

impl Body for Unread {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().map_or(true, Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        if self.drain && !body.is_end_stream() && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(drain(body));
        }
    }
}

/// Reads and discards a body, up to [`DRAIN_BYTES`] within [`DRAIN_TIME`].
async fn drain(mut body: Incoming) {
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}
