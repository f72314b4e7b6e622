//! The body of every response the proxy listener sends, and of every request
//! it forwards: the peer's, streamed, or one held whole (an inspected login,
//! or one of our own responses).

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// A streamed body from a peer, or bytes credgate holds.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;
