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
pub mod http_stack;
pub mod ja4;
pub mod table;

use std::collections::HashSet;
use std::fmt;

use http::{HeaderMap, HeaderName};

pub use client_hello::{ClientHello, ClientHelloError, Records, MAX_PREFIX};
pub use http_stack::HttpFingerprint;
pub use table::{FingerprintReputation, FingerprintStats, Fingerprints};

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

/// Where a request's fingerprint comes from: the connection's own
/// ClientHello, or a header that a trusted load balancer wrote.
#[derive(Debug, Clone, Default)]
pub struct FingerprintSource {
    /// `[server] fingerprint_header`.
    header: Option<HeaderName>,
}

impl FingerprintSource {
    pub fn new(header: Option<HeaderName>) -> Self {
        Self { header }
    }

    /// The fingerprint of a request whose connection showed `tls` (`None`
    /// on the cleartext listener). A trusted peer's header wins: behind a
    /// TLS-terminating load balancer the ClientHello we saw is the
    /// balancer's own. Anyone else's copy of the header is removed, so that
    /// neither we nor the shop believe a fingerprint a client wrote.
    pub fn resolve(
        &self,
        tls: Option<Ja4>,
        peer_trusted: bool,
        headers: &mut HeaderMap,
    ) -> Option<Ja4> {
        let Some(name) = &self.header else {
            return tls;
        };
        if !peer_trusted {
            headers.remove(name);
            return tls;
        }
        // One value, in the exact shape; anything else is not a fingerprint
        // and is not keyed on.
        let mut values = headers.get_all(name).iter();
        let value = values.next().filter(|_| values.next().is_none());
        match value.map(|v| v.to_str().map(Ja4::parse)) {
            Some(Ok(Some(ja4))) => Some(ja4),
            Some(_) => {
                tracing::debug!(header = %name, "ignoring a malformed fingerprint header");
                tls
            }
            None => tls,
        }
    }
}

/// `[suspicion] fingerprint_allowlist` and `fingerprint_denylist`.
#[derive(Debug, Clone, Default)]
pub struct FingerprintLists {
    allow: HashSet<Ja4>,
    deny: HashSet<Ja4>,
}

impl FingerprintLists {
    /// The lists of the config. Its check caught what is not even shaped
    /// like a JA4; an entry that still is not one could never match, and
    /// is left out with a warning.
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let parse = |list: &[String], key: &str| -> HashSet<Ja4> {
            (list.iter())
                .filter_map(|entry| {
                    let ja4 = Ja4::parse(entry);
                    if ja4.is_none() {
                        tracing::warn!(key, entry, "not a JA4; left out");
                    }
                    ja4
                })
                .collect()
        };
        Self {
            allow: parse(allow, "suspicion.fingerprint_allowlist"),
            deny: parse(deny, "suspicion.fingerprint_denylist"),
        }
    }

    /// Returns true if and only if `fingerprint` is on the allow list.
    pub fn allowed(&self, fingerprint: Option<Ja4>) -> bool {
        fingerprint.is_some_and(|ja4| self.allow.contains(&ja4))
    }

    /// Returns true if and only if `fingerprint` is on the deny list.
    pub fn denied(&self, fingerprint: Option<Ja4>) -> bool {
        fingerprint.is_some_and(|ja4| self.deny.contains(&ja4))
    }
}

#[cfg(test)]
mod tests;
