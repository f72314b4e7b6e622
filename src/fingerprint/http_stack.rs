//! The HTTP fingerprint of a connection, from the first bytes the client
//! sent after the TLS handshake: what its HTTP stack does before the
//! application chooses anything.
//!
//! - HTTP/2, Akamai's format (Shuster, Black Hat EU 2017):
//!   `SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order`, e.g. Chrome's
//!   `1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p`. hyper and h2 keep
//!   none of it, so the frames are read here: the SETTINGS and
//!   WINDOW_UPDATE on stream 0, the PRIORITY frames, and the order of the
//!   pseudo-headers in the first HEADERS block (HPACK: the names of a
//!   connection's first block come from the static table or as literals, so
//!   no decoder state is needed).
//! - HTTP/1.1: the header names of the first request in the order and case
//!   they were sent, hashed: `h1_<count>_<12 hex of SHA-256>`. hyper
//!   lower-cases names and keeps their order only behind its `ffi` feature.
//!
//! A tool's stack sends the same on every connection, whatever the address.
//! The bytes are peer input: every length is checked, and anything that
//! does not parse gives no fingerprint rather than an error.

use std::fmt;
use std::fmt::Write as _;

use super::ja4::hash12;

/// The most bytes of a connection kept to fingerprint it: a first request
/// head, or an HTTP/2 preface, SETTINGS and first HEADERS, fit easily.
pub const CAPTURE: usize = 8 * 1024;

/// Capacity of the inline text: Akamai strings of common clients are under
/// 120 characters; a longer one is replaced by its hash.
const MAX_TEXT: usize = 128;

/// At most this many SETTINGS and PRIORITY entries are read.
const MAX_ENTRIES: usize = 16;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's HTTP fingerprint, inline so that it is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpFingerprint {
    text: [u8; MAX_TEXT],
    len: u8,
}

impl HttpFingerprint {
    /// The fingerprint of a connection whose client sent `bytes` first:
    /// HTTP/2 if they start with the preface, else an HTTP/1.1 request head.
    /// `None` if they are incomplete or do not parse.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        match bytes.strip_prefix(PREFACE) {
            Some(frames) => h2(frames),
            None => h1(bytes),
        }
    }

    pub fn as_str(&self) -> &str {
        // Built from ASCII only.
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or("")
    }

    fn new(text: &str) -> Self {
        let text = match text.len() <= MAX_TEXT {
            true => text.to_owned(),
            false => format!("h2_{}", hex12(text)),
        };
        let mut out = Self {
            text: [0; MAX_TEXT],
            len: text.len() as u8,
        };
        out.text[..text.len()].copy_from_slice(text.as_bytes());
        out
    }
}

impl fmt::Display for HttpFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HttpFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpFingerprint({})", self.as_str())
    }
}

impl serde::Serialize for HttpFingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn hex12(text: &str) -> String {
    String::from_utf8_lossy(&hash12(text)).into_owned()
}

/// The header names of a complete request head, as sent.
fn h1(head: &[u8]) -> Option<HttpFingerprint> {
    let end = memchr::memmem::find(head, b"\r\n\r\n")?;
    let mut lines =
        (head[..end].split(|b| *b == b'\n')).map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next()?;
    if !request_line.ends_with(b" HTTP/1.1") && !request_line.ends_with(b" HTTP/1.0") {
        return None;
    }
    let mut names = String::new();
    let mut count = 0u32;
    for line in lines {
        let colon = memchr::memchr(b':', line)?;
        let name = std::str::from_utf8(&line[..colon]).ok()?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        if count > 0 {
            names.push(',');
        }
        names.push_str(name);
        count += 1;
    }
    let text = format!("h1_{:02}_{}", count.min(99), hex12(&names));
    Some(HttpFingerprint::new(&text))
}

/// Reads frames until the first HEADERS frame.
fn h2(mut frames: &[u8]) -> Option<HttpFingerprint> {
    let (mut settings, mut window, mut priority) = (String::new(), None, String::new());
    let (mut entries, mut priorities) = (0, 0);
    loop {
        let header = frames.get(..9)?;
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let payload = frames.get(9..9 + len)?;
        frames = &frames[9 + len..];
        match kind {
            // SETTINGS, not an ACK.
            4 if flags & 1 == 0 && len % 6 == 0 => {
                for setting in payload.chunks_exact(6).take(MAX_ENTRIES - entries) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                    if !settings.is_empty() {
                        settings.push(';');
                    }
                    let _ = write!(settings, "{id}:{value}");
                    entries += 1;
                }
            }
            8 if stream == 0 && len == 4 => {
                let bytes = [payload[0] & 0x7f, payload[1], payload[2], payload[3]];
                window.get_or_insert(u32::from_be_bytes(bytes));
            }
            2 if len == 5 && priorities < MAX_ENTRIES => {
                if !priority.is_empty() {
                    priority.push(',');
                }
                let exclusive = payload[0] >> 7;
                let bytes = [payload[0] & 0x7f, payload[1], payload[2], payload[3]];
                let depends_on = u32::from_be_bytes(bytes);
                let weight = u16::from(payload[4]) + 1;
                let _ = write!(priority, "{stream}:{exclusive}:{depends_on}:{weight}");
                priorities += 1;
            }
            1 => {
                let pseudo = pseudo_order(headers_block(payload, flags)?)?;
                let window = window.map_or("00".into(), |w| w.to_string());
                let priority = if priority.is_empty() { "0" } else { &priority };
                let text = format!("{settings}|{window}|{priority}|{pseudo}");
                return Some(HttpFingerprint::new(&text));
            }
            _ => {}
        }
    }
}

/// The header block fragment of a HEADERS frame: without padding and
/// priority fields.
fn headers_block(payload: &[u8], flags: u8) -> Option<&[u8]> {
    const PADDED: u8 = 0x8;
    const PRIORITY: u8 = 0x20;
    let (pad, mut block) = match flags & PADDED != 0 {
        true => (usize::from(*payload.first()?), payload.get(1..)?),
        false => (0, payload),
    };
    if flags & PRIORITY != 0 {
        block = block.get(5..)?;
    }
    block.get(..block.len().checked_sub(pad)?)
}

/// The pseudo-headers at the start of a connection's first HPACK block, as
/// Akamai's letters (`m,a,s,p`).
fn pseudo_order(mut block: &[u8]) -> Option<String> {
    let mut order = String::new();
    while let Some(&first) = block.first() {
        let (name_index, literal_value) = match first {
            b if b & 0x80 != 0 => (integer(&mut block, 7)?, false),
            b if b & 0xc0 == 0x40 => (integer(&mut block, 6)?, true),
            b if b & 0xe0 == 0x20 => {
                // A dynamic table size update.
                integer(&mut block, 5)?;
                continue;
            }
            _ => (integer(&mut block, 4)?, true),
        };
        let letter = match name_index {
            0 => literal_pseudo(&mut block)?,
            1 => Some('a'),
            2 | 3 => Some('m'),
            4 | 5 => Some('p'),
            6 | 7 => Some('s'),
            _ => None,
        };
        let Some(letter) = letter else {
            break;
        };
        if literal_value {
            string(&mut block)?;
        }
        if !order.is_empty() {
            order.push(',');
        }
        order.push(letter);
    }
    Some(order)
}

/// A literal header name: its pseudo-header letter, `None` for any other
/// name (the pseudo-headers are over).
fn literal_pseudo(block: &mut &[u8]) -> Option<Option<char>> {
    let huffman = *block.first()? & 0x80 != 0;
    let name = string(block)?;
    Some(match (huffman, name) {
        (false, b":method") => Some('m'),
        (false, b":authority") => Some('a'),
        (false, b":scheme") => Some('s'),
        (false, b":path") => Some('p'),
        (false, b":protocol") => Some('r'),
        _ => None,
    })
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn integer(block: &mut &[u8], n: u32) -> Option<usize> {
    let (&first, rest) = block.split_first()?;
    *block = rest;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Some(value);
    }
    for shift in (0..28).step_by(7) {
        let (&byte, rest) = block.split_first()?;
        *block = rest;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// An HPACK string literal (RFC 7541 §5.2): its bytes, as sent.
fn string<'a>(block: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = integer(block, 7)?;
    let bytes = block.get(..len)?;
    *block = &block[len..];
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, value) in pairs {
            out.extend(id.to_be_bytes());
            out.extend(value.to_be_bytes());
        }
        out
    }

    #[test]
    fn chromes_http2_fingerprint() {
        let mut bytes = PREFACE.to_vec();
        let chrome = settings(&[(1, 65536), (2, 0), (4, 6291456), (6, 262144)]);
        bytes.extend(frame(4, 0, 0, &chrome));
        bytes.extend(frame(8, 0, 0, &15663105u32.to_be_bytes()));
        // :method GET (2), :authority literal (1), :scheme https (7),
        // :path literal (4), then user-agent (58).
        let mut block = vec![0x82, 0x41, 3];
        block.extend(b"a.b");
        block.extend([0x87, 0x44, 1, b'/', 0x7a, 1, b'x']);
        // HEADERS with END_HEADERS and PRIORITY (exclusive, on 0, 256).
        let mut payload = vec![0x80, 0, 0, 0, 255];
        payload.extend(&block);
        bytes.extend(frame(1, 0x24, 1, &payload));
        let fingerprint = HttpFingerprint::of(&bytes).unwrap();
        assert_eq!(
            fingerprint.as_str(),
            "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p"
        );
    }

    #[test]
    fn firefox_style_priority_frames_and_a_literal_pseudo_name() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(4, 0, 0, &settings(&[(1, 65536), (4, 131072)])));
        bytes.extend(frame(2, 0, 3, &[0, 0, 0, 0, 200]));
        bytes.extend(frame(2, 0, 5, &[0, 0, 0, 0, 100]));
        let mut block = vec![0x83, 0x00, 5];
        block.extend(b":path");
        block.extend([1, b'/']);
        block.extend([0x86, 0x81]);
        bytes.extend(frame(1, 0x4, 13, &block));
        assert_eq!(
            HttpFingerprint::of(&bytes).unwrap().as_str(),
            "1:65536;4:131072|00|3:0:0:201,5:0:0:101|m,p,s,a"
        );
    }

    #[test]
    fn http1_header_order_and_case_make_the_fingerprint() {
        let curl =
            b"POST /login HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\nbody";
        let tool = b"POST /login HTTP/1.1\r\nhost: a\r\nuser-agent: curl/8\r\naccept: */*\r\n\r\n";
        let reordered =
            b"POST /login HTTP/1.1\r\nUser-Agent: curl/8\r\nHost: a\r\nAccept: */*\r\n\r\n";
        let [curl, tool, reordered] =
            [&curl[..], tool, reordered].map(|b| HttpFingerprint::of(b).unwrap());
        assert!(curl.as_str().starts_with("h1_03_"), "{curl}");
        assert_eq!(curl.as_str().len(), "h1_03_".len() + 12);
        assert_ne!(curl, tool, "case counts");
        assert_ne!(curl, reordered, "order counts");
        let again = b"GET / HTTP/1.1\r\nHost: b\r\nUser-Agent: x\r\nAccept: y\r\n\r\n";
        assert_eq!(
            HttpFingerprint::of(again),
            Some(curl),
            "values do not count"
        );
    }

    #[test]
    fn incomplete_or_malformed_bytes_give_no_fingerprint() {
        // A frame that declares more than there is.
        let overrun = [PREFACE, &[0, 0, 9, 4, 0, 0, 0, 0, 0, 0][..]].concat();
        let cases: [&[u8]; 6] = [
            b"",
            b"POST /login HTTP/1.1\r\nHost: a\r\n",
            b"POST /login HTTP/1.1\r\nno colon\r\n\r\n",
            b"\x16\x03\x01 not http\r\n\r\n",
            PREFACE,
            &overrun,
        ];
        for bytes in cases {
            assert_eq!(HttpFingerprint::of(bytes), None, "{bytes:?}");
        }
        // HPACK integers that never end, and strings that overrun.
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(1, 0x4, 1, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff]));
        assert_eq!(HttpFingerprint::of(&bytes), None);
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(1, 0x4, 1, &[0x41, 50, b'x']));
        assert_eq!(HttpFingerprint::of(&bytes), None);
    }

    #[test]
    fn a_long_text_is_replaced_by_its_hash() {
        let mut bytes = PREFACE.to_vec();
        let many: Vec<(u16, u32)> = (1..=16).map(|id| (id, u32::MAX)).collect();
        bytes.extend(frame(4, 0, 0, &settings(&many)));
        bytes.extend(frame(1, 0x4, 1, &[0x82]));
        let fingerprint = HttpFingerprint::of(&bytes).unwrap();
        assert!(fingerprint.as_str().starts_with("h2_"), "{fingerprint}");
        assert_eq!(fingerprint.as_str().len(), 15);
    }
}
