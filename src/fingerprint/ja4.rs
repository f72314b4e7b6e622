//! JA4, FoxIO's TLS client fingerprint, computed from a parsed ClientHello
//! exactly as `technical_details/JA4.md` of github.com/FoxIO-LLC/ja4 defines
//! it (JA4 itself is BSD-3-Clause):
//!
//! ```text
//! t 13 d 15 16 h2 _ 8daaf6152771 _ e5627efa2ab1
//! │ │  │ │  │  │     │              └ sha256(sorted extensions without SNI and ALPN
//! │ │  │ │  │  │     │                       "_" signature algorithms in order)[..12]
//! │ │  │ │  │  │     └ sha256(sorted cipher suites)[..12]
//! │ │  │ │  │  └ first and last character of the first ALPN value, "00" if none
//! │ │  │ │  └ extension count, cipher count (GREASE ignored, at most 99)
//! │ │  └ "d": SNI present, "i": absent
//! │ └ highest supported_versions entry, else the hello's version
//! └ "t": TLS over TCP (credgate sees no QUIC or DTLS)
//! ```

use std::fmt::Write as _;

use ring::digest;

use super::client_hello::{ClientHello, EXT_ALPN, EXT_SERVER_NAME};
use super::{Ja4, JA4_LEN};

/// An empty list hashes to zeros, not to sha256(""), so that "nothing" is
/// visible in the fingerprint.
const EMPTY_HASH: &[u8; 12] = b"000000000000";

/// The JA4 of `hello`.
pub fn compute(hello: &ClientHello<'_>) -> Ja4 {
    let mut ciphers: Vec<u16> = hello.ciphers().filter(|&c| !is_grease(c)).collect();
    let mut extensions: Vec<u16> = hello
        .extensions
        .iter()
        .map(|&(ty, _)| ty)
        .filter(|&ty| !is_grease(ty))
        .collect();
    let sni = if hello.extension(EXT_SERVER_NAME).is_some() {
        b'd'
    } else {
        b'i'
    };
    let mut out = [0u8; JA4_LEN];
    out[0] = b't';
    out[1..3].copy_from_slice(version(hello));
    out[3] = sni;
    out[4..6].copy_from_slice(&count(ciphers.len()));
    out[6..8].copy_from_slice(&count(extensions.len()));
    out[8..10].copy_from_slice(&alpn(hello.first_alpn()));
    out[10] = b'_';
    ciphers.sort_unstable();
    out[11..23].copy_from_slice(&hash12(&hex_list(&ciphers)));
    out[23] = b'_';
    extensions.retain(|&ty| ty != EXT_SERVER_NAME && ty != EXT_ALPN);
    extensions.sort_unstable();
    out[24..36].copy_from_slice(&extension_hash(&extensions, hello));
    Ja4(out)
}

/// GREASE values (RFC 8701) are `0x?a?a` with both bytes equal.
fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

fn version(hello: &ClientHello<'_>) -> &'static [u8; 2] {
    let highest = hello
        .supported_versions()
        .and_then(|versions| versions.filter(|&v| !is_grease(v)).max());
    match highest.unwrap_or(hello.legacy_version) {
        0x0304 => b"13",
        0x0303 => b"12",
        0x0302 => b"11",
        0x0301 => b"10",
        0x0300 => b"s3",
        0x0002 => b"s2",
        _ => b"00",
    }
}

fn count(n: usize) -> [u8; 2] {
    let n = n.min(99) as u8;
    [b'0' + n / 10, b'0' + n % 10]
}

/// The first and last character of the first ALPN value; when either is
/// not ASCII alphanumeric, the first and last digit of the value in hex.
fn alpn(first: Option<&[u8]>) -> [u8; 2] {
    let Some((&head, &tail)) = first.and_then(|v| v.first().zip(v.last())) else {
        return *b"00";
    };
    if head.is_ascii_alphanumeric() && tail.is_ascii_alphanumeric() {
        return [head, tail];
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(head >> 4)], HEX[usize::from(tail & 0x0f)]]
}

fn extension_hash(sorted: &[u16], hello: &ClientHello<'_>) -> [u8; 12] {
    if sorted.is_empty() {
        return *EMPTY_HASH;
    }
    let mut list = hex_list(sorted);
    let mut algorithms = hello.signature_algorithms().peekable();
    // No signature algorithms: the string ends without the underscore.
    if algorithms.peek().is_some() {
        list.push('_');
        for (i, alg) in algorithms.enumerate() {
            if i > 0 {
                list.push(',');
            }
            let _ = write!(list, "{alg:04x}");
        }
    }
    hash12(&list)
}

/// `0a0b,0c0d,...`: four lower-case hex digits each, comma separated.
fn hex_list(values: &[u16]) -> String {
    let mut list = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        let _ = write!(list, "{v:04x}");
    }
    list
}

/// The first 12 lower-case hex digits of the SHA-256 of `list`.
pub(super) fn hash12(list: &str) -> [u8; 12] {
    if list.is_empty() {
        return *EMPTY_HASH;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = digest::digest(&digest::SHA256, list.as_bytes());
    let mut out = [0u8; 12];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.as_ref()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values_are_recognised() {
        for v in [0x0a0a, 0x1a1a, 0x9a9a, 0xfafa] {
            assert!(is_grease(v), "{v:04x}");
        }
        for v in [0x0a1a, 0x1301, 0x0000, 0xaaab] {
            assert!(!is_grease(v), "{v:04x}");
        }
    }

    /// The spec's ALPN examples, "ALPN Extension Value".
    #[test]
    fn alpn_follows_the_specification_examples() {
        let cases: &[(&[u8], &[u8; 2])] = &[
            (b"h2", b"h2"),
            (b"http/1.1", b"h1"),
            (b"a", b"aa"),
            (&[0xab], b"ab"),
            (&[0x20], b"20"),
            (&[0xab, 0xcd], b"ad"),
            (&[0x20, 0x61], b"21"),
            (&[0x30, 0xab], b"3b"),
            (&[0x61, 0x20], b"60"),
            (&[0x30, 0x31, 0xab, 0xcd], b"3d"),
            (&[0x30, 0xab, 0xcd, 0x31], b"01"),
            (b"", b"00"),
        ];
        for (value, expected) in cases {
            assert_eq!(&alpn(Some(value)), *expected, "{value:02x?}");
        }
        assert_eq!(&alpn(None), b"00");
    }

    /// The spec's worked example, "Cipher hash" and "Extension hash".
    #[test]
    fn hashes_match_the_specification_example() {
        let ciphers = [
            0x002f, 0x0035, 0x009c, 0x009d, 0x1301, 0x1302, 0x1303, 0xc013, 0xc014, 0xc02b, 0xc02c,
            0xc02f, 0xc030, 0xcca8, 0xcca9,
        ];
        assert_eq!(&hash12(&hex_list(&ciphers)), b"8daaf6152771");
        let extensions = "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01";
        assert_eq!(&hash12(extensions), b"6d807ffa2a79");
        let with_algorithms = format!("{extensions}_0403,0804,0401,0503,0805,0501,0806,0601");
        assert_eq!(&hash12(&with_algorithms), b"e5627efa2ab1");
        assert_eq!(&hash12(""), EMPTY_HASH);
    }
}
