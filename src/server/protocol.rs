//! Which HTTP a connection speaks, and hyper's builder for each.
//!
//! On TLS, ALPN has already said which protocol the client speaks, so the
//! connection goes straight to that protocol's builder. hyper-util's auto
//! builder would first read the opening bytes to tell HTTP/1 from HTTP/2 and
//! hand them back through a rewinding reader: hyper's first read then gets
//! only those bytes, and its second read doubles its 8 KiB read buffer to
//! 16 KiB, which a keep-alive connection keeps for its whole life (dhat: 16
//! of the 39 KiB an idle HTTP/1.1 connection held). A TLS client that
//! offers no ALPN speaks HTTP/1.1: HTTP/2 over TLS must be negotiated by
//! ALPN (RFC 9113, section 3.3), and nginx answers such a client the same
//! way. Only the cleartext listener, where prior-knowledge HTTP/2 is
//! allowed, still reads the first bytes to tell them apart.

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use crate::config;

// Past this many HTTP/2 streams reset by the client before we handle them,
// the connection is an attack (CVE-2023-44487, "rapid reset").
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The protocol a connection will speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Cleartext, where HTTP/2 may start by prior knowledge: read the first
    /// bytes to find out.
    Detect,
}

impl Protocol {
    /// The protocol of a TLS connection: HTTP/2 if ALPN agreed on it,
    /// HTTP/1.1 otherwise (agreed on, or nothing offered).
    pub fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            _ => Self::Http1,
        }
    }
}

/// hyper's builders, one per [`Protocol`], with the same settings.
#[derive(Debug, Clone)]
pub struct Builders {
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    pub detect: auto::Builder<TokioExecutor>,
}

// hyper's builders and hyper-util's wrappers of them share method names but
// no trait: one list of settings for both.
macro_rules! http1_settings {
    ($builder:expr, $s:expr) => {
        // hyper enforces `header_read_timeout` only when it has a timer.
        $builder
            .timer(TokioTimer::new())
            .header_read_timeout($s.header_read_timeout.0)
            .max_headers($s.max_headers)
            .max_buf_size(usize::try_from($s.max_header_size.0).unwrap_or(usize::MAX))
            .keep_alive(true)
    };
}

macro_rules! http2_settings {
    ($builder:expr, $s:expr) => {
        $builder
            .timer(TokioTimer::new())
            .max_concurrent_streams($s.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .max_header_list_size(u32::try_from($s.max_header_size.0).unwrap_or(u32::MAX))
    };
}

impl Builders {
    pub fn new(s: &config::Server) -> Self {
        let mut http1 = http1::Builder::new();
        http1_settings!(http1, s);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2_settings!(http2, s);
        let mut detect = auto::Builder::new(TokioExecutor::new());
        http1_settings!(detect.http1(), s);
        http2_settings!(detect.http2(), s);
        Self {
            http1,
            http2,
            detect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_http2_only_when_alpn_agreed_on_it() {
        assert_eq!(Protocol::from_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(Protocol::from_alpn(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(Protocol::from_alpn(None), Protocol::Http1);
    }
}
