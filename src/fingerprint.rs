//! Fingerprints of the client software, not of its address: JA4 of the TLS
//! ClientHello, read off the socket before the handshake (or, behind a
//! TLS-terminating load balancer, taken from a header that a trusted peer
//! set), and a table of what each fingerprint's logins did.
//!
//! A residential proxy network gives a stuffing tool a fresh address every
//! few attempts, but the tool's TLS stack stays the same. Nothing here is
//! trusted blindly: a ClientHello is peer input, parsed with every length
//! checked; a header value is believed only from a trusted peer and only in
//! JA4's exact shape.

pub mod client_hello;
pub mod ja4;
pub mod table;

use std::fmt;

pub use client_hello::{ClientHello, ClientHelloError, Records, MAX_PREFIX};
pub use table::{FingerprintStats, Fingerprints};

/// A JA4 is always 36 ASCII characters: `t13d1516h2_8daaf6152771_e5627efa2ab1`.
pub const JA4_LEN: usize = 36;

/// A JA4 fingerprint, stored inline so that it is `Copy` and costs nothing
/// to hand to every request of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ja4([u8; JA4_LEN]);

impl Ja4 {
    /// The JA4 of the ClientHello handshake message `message` (as
    /// [`client_hello::reassemble`] returns it).
    pub fn of_message(message: &[u8]) -> Result<Self, ClientHelloError> {
        ClientHello::parse(message).map(|hello| ja4::compute(&hello))
    }

    /// Parses a JA4 written by someone else (a load balancer's header).
    /// Returns `None` unless `value` has JA4's exact shape: what does not
    /// look like a fingerprint is not keyed on.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes: [u8; JA4_LEN] = value.as_bytes().try_into().ok()?;
        let alnum = |b: &u8| b.is_ascii_alphanumeric();
        let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        let shaped = matches!(bytes[0], b't' | b'q' | b'd')
            && bytes[1..3].iter().all(alnum)
            && matches!(bytes[3], b'd' | b'i')
            && bytes[4..8].iter().all(u8::is_ascii_digit)
            && bytes[8..10].iter().all(alnum)
            && bytes[10] == b'_'
            && bytes[11..23].iter().all(hex)
            && bytes[23] == b'_'
            && bytes[24..].iter().all(hex);
        shaped.then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Both constructors admit ASCII only.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Ja4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Ja4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ja4({})", self.as_str())
    }
}

impl serde::Serialize for Ja4 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
