//! The TLS ClientHello as the client sent it: the handshake records read off
//! the socket before rustls sees them, and the fields JA4 is made of.
//!
//! rustls parses the same bytes but keeps neither the extension order nor
//! the GREASE values, so credgate reads them itself. Everything here is peer
//! input: every length is checked against what is left, nothing indexes
//! unchecked, and a hello that does not parse is an error, never a panic.

use std::borrow::Cow;

/// The largest ClientHello handshake message accepted (its 4-byte header
/// included). Real clients send under 2 KiB; post-quantum key shares push
/// that towards 2.5 KiB. More than one full TLS record is an attack or a bug.
pub const MAX_HELLO: usize = 16 * 1024;

/// A ClientHello may arrive split across records; past this many, the
/// client is wasting our buffer on record headers.
pub const MAX_RECORDS: usize = 32;

/// The most bytes ever buffered before the handshake: a maximal hello and
/// the headers of the records it is split across.
pub const MAX_PREFIX: usize = MAX_HELLO + MAX_RECORDS * RECORD_HEADER;

const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// TLSPlaintext.length may not exceed 2^14 (RFC 8446, 5.1).
const MAX_RECORD: usize = 1 << 14;

pub const EXT_SERVER_NAME: u16 = 0x0000;
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
pub const EXT_ALPN: u16 = 0x0010;
pub const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// Why the first bytes of a connection are not a ClientHello we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientHelloError {
    #[error("not a TLS handshake record (content type {content_type})")]
    NotHandshake { content_type: u8 },
    #[error("not a ClientHello (handshake type {handshake_type})")]
    NotClientHello { handshake_type: u8 },
    #[error("ClientHello exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("ClientHello split across more than {limit} records")]
    TooManyRecords { limit: usize },
    #[error("malformed ClientHello: bad {field}")]
    Malformed { field: &'static str },
    #[error("connection closed before the ClientHello was complete")]
    Incomplete,
}

/// Whether `buf`, the first bytes of a connection, holds a whole
/// ClientHello yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Records<'a> {
    /// Read more; nothing wrong so far.
    NeedMore,
    /// The handshake message (header included), joined from its records.
    Complete(Cow<'a, [u8]>),
}

/// Reads the handshake records at the start of `buf` and joins the
/// ClientHello they carry. Borrows when the hello sits in one record, the
/// common case.
pub fn reassemble(buf: &[u8]) -> Result<Records<'_>, ClientHelloError> {
    let mut fragments: Vec<&[u8]> = Vec::new();
    let mut joined_len = 0;
    let mut rest = buf;
    loop {
        if let Some(total) = message_len(&fragments, joined_len)? {
            if joined_len >= total {
                return Ok(Records::Complete(join(&fragments, total)));
            }
        }
        if fragments.len() == MAX_RECORDS {
            return Err(ClientHelloError::TooManyRecords { limit: MAX_RECORDS });
        }
        let Some(header) = rest.get(..RECORD_HEADER) else {
            return Ok(Records::NeedMore);
        };
        let len = check_record_header(header)?;
        let Some(fragment) = rest.get(RECORD_HEADER..RECORD_HEADER + len) else {
            return Ok(Records::NeedMore);
        };
        fragments.push(fragment);
        joined_len += len;
        rest = &rest[RECORD_HEADER + len..];
    }
}

/// The record's payload length, once its header says it is a plausible
/// handshake record.
fn check_record_header(header: &[u8]) -> Result<usize, ClientHelloError> {
    let [content_type, major, _minor, hi, lo] = *header else {
        return Err(ClientHelloError::Malformed { field: "record" });
    };
    if content_type != CONTENT_HANDSHAKE {
        return Err(ClientHelloError::NotHandshake { content_type });
    }
    if major != 3 {
        return Err(ClientHelloError::Malformed {
            field: "record version",
        });
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    // Zero-length handshake fragments are forbidden (RFC 8446, 5.1).
    if len == 0 || len > MAX_RECORD {
        return Err(ClientHelloError::Malformed {
            field: "record length",
        });
    }
    Ok(len)
}

/// The whole handshake message's length, once its 4-byte header is in.
fn message_len(fragments: &[&[u8]], joined_len: usize) -> Result<Option<usize>, ClientHelloError> {
    if joined_len < 4 {
        return Ok(None);
    }
    let mut header = [0u8; 4];
    for (slot, byte) in header
        .iter_mut()
        .zip(fragments.iter().flat_map(|f| f.iter()))
    {
        *slot = *byte;
    }
    if header[0] != HANDSHAKE_CLIENT_HELLO {
        return Err(ClientHelloError::NotClientHello {
            handshake_type: header[0],
        });
    }
    let body = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    let total = 4 + body;
    if total > MAX_HELLO {
        return Err(ClientHelloError::TooLarge { limit: MAX_HELLO });
    }
    Ok(Some(total))
}

fn join<'a>(fragments: &[&'a [u8]], total: usize) -> Cow<'a, [u8]> {
    match fragments {
        [only] => Cow::Borrowed(&only[..total.min(only.len())]),
        _ => {
            let mut joined: Vec<u8> = fragments.concat();
            joined.truncate(total);
            Cow::Owned(joined)
        }
    }
}

/// The fields of a ClientHello that fingerprints are made of, borrowed
/// from the message. Lists keep the client's order and its GREASE values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub legacy_version: u16,
    /// Cipher suites, two bytes each.
    pub cipher_suites: &'a [u8],
    /// `(type, data)` for each extension, in order.
    pub extensions: Vec<(u16, &'a [u8])>,
}

impl<'a> ClientHello<'a> {
    /// Parses a handshake message, header included, as [`reassemble`]
    /// returns it.
    pub fn parse(message: &'a [u8]) -> Result<Self, ClientHelloError> {
        let mut r = Reader(message);
        let handshake_type = r.u8("handshake type")?;
        if handshake_type != HANDSHAKE_CLIENT_HELLO {
            return Err(ClientHelloError::NotClientHello { handshake_type });
        }
        let mut body = Reader(r.vec24("handshake length")?);
        r.end("handshake length")?;
        let legacy_version = body.u16("version")?;
        body.take(32, "random")?;
        let session_id = body.vec8("session id")?;
        if session_id.len() > 32 {
            return Err(ClientHelloError::Malformed {
                field: "session id",
            });
        }
        let cipher_suites = body.vec16("cipher suites")?;
        if cipher_suites.is_empty() || cipher_suites.len() % 2 != 0 {
            return Err(ClientHelloError::Malformed {
                field: "cipher suites",
            });
        }
        if body.vec8("compression methods")?.is_empty() {
            return Err(ClientHelloError::Malformed {
                field: "compression methods",
            });
        }
        // Extensions are optional in a TLS 1.0-1.2 hello.
        let extensions = if body.0.is_empty() {
            Vec::new()
        } else {
            extensions(Reader(body.vec16("extensions")?))?
        };
        body.end("extensions")?;
        Ok(Self {
            legacy_version,
            cipher_suites,
            extensions,
        })
    }

    /// The cipher suites, in order.
    pub fn ciphers(&self) -> impl Iterator<Item = u16> + '_ {
        u16s(self.cipher_suites)
    }

    /// The data of the first extension of type `ty`.
    pub fn extension(&self, ty: u16) -> Option<&'a [u8]> {
        self.extensions
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, data)| *data)
    }

    /// The versions offered in `supported_versions`, if the extension is
    /// there and well formed.
    pub fn supported_versions(&self) -> Option<impl Iterator<Item = u16> + 'a> {
        let data = self.extension(EXT_SUPPORTED_VERSIONS)?;
        let mut r = Reader(data);
        let list = r.vec8("supported versions").ok()?;
        r.end("supported versions").ok()?;
        Some(u16s(list))
    }

    /// The signature algorithms, in order; empty without the extension.
    pub fn signature_algorithms(&self) -> impl Iterator<Item = u16> + 'a {
        let list = self
            .extension(EXT_SIGNATURE_ALGORITHMS)
            .and_then(|data| Reader(data).vec16("signature algorithms").ok())
            .unwrap_or_default();
        u16s(list)
    }

    /// The first protocol named in ALPN, if any.
    pub fn first_alpn(&self) -> Option<&'a [u8]> {
        let data = self.extension(EXT_ALPN)?;
        let mut list = Reader(Reader(data).vec16("alpn").ok()?);
        list.vec8("alpn protocol").ok()
    }
}

fn extensions(mut r: Reader<'_>) -> Result<Vec<(u16, &[u8])>, ClientHelloError> {
    let mut out = Vec::with_capacity(24);
    while !r.0.is_empty() {
        let ty = r.u16("extension type")?;
        let data = r.vec16("extension length")?;
        out.push((ty, data));
    }
    Ok(out)
}

/// Big-endian pairs; a trailing odd byte is ignored (lists are checked for
/// even length where it matters).
fn u16s(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
}

/// A cursor over peer bytes: every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ClientHelloError> {
        if self.0.len() < n {
            return Err(ClientHelloError::Malformed { field });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ClientHelloError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ClientHelloError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self, field: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let n = self.u8(field)?;
        self.take(usize::from(n), field)
    }

    fn vec16(&mut self, field: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }

    fn vec24(&mut self, field: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let b = self.take(3, field)?;
        let n = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        self.take(n, field)
    }

    fn end(&self, field: &'static str) -> Result<(), ClientHelloError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ClientHelloError::Malformed { field })
        }
    }
}
