//! Login bodies: read with a size cap and a deadline, then the username and
//! password extracted from a form or JSON body.
//!
//! The shop must see exactly what was inspected, so the rules are strict
//! where a lenient parser would let the shop and credgate disagree: a
//! credential field sent twice, a variant of its name (`Username`,
//! `paſſword`, see [`crate::fieldname`]), a control character, a compressed
//! body, a repeated `Content-Type`, `Content-Encoding` or `Content-Length`,
//! and in forms a `%uXXXX` escape or a `;` between pairs (which some stacks
//! still decode or split on) are refused rather than guessed at. The bytes
//! read here are the bytes forwarded; nothing is re-serialised.

mod json;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::HeaderName;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use percent_encoding::percent_decode;
use zeroize::Zeroizing;

use crate::body::Unread;
use crate::config::BodyFormat;
pub use crate::fieldname::Field;
use crate::fieldname::{self, NameMatch};
use crate::route::{field_name, LoginRoute};

/// The username as the client sent it. Not `Display`: logs get a keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

/// The attempted password. Prints as `<redacted>`, has no `Display`, and its
/// buffer is zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Zeroizing<Vec<u8>>);

/// One login attempt's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: Username,
    pub password: Password,
}

/// A login body, read whole (it is small by construction: `max_body`).
#[derive(Debug, Clone)]
pub struct LoginBody {
    pub bytes: Bytes,
    /// The body's format, resolved from `Content-Type` for `auto` routes.
    pub format: BodyFormat,
}

/// Why a login body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("login body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("login body not received within {after:?}")]
    Timeout { after: Duration },
    #[error("login body could not be read")]
    Read(#[source] hyper::Error),
    #[error("login bodies must not carry a Content-Encoding")]
    Encoded,
    #[error("the content type does not match the login route's format")]
    ContentType,
    #[error("a login request must carry at most one {name} header")]
    RepeatedHeader { name: HeaderName },
}

/// Why no credentials could be taken from a login body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the login body is not valid {format}")]
    Malformed { format: &'static str },
    #[error("the {field} is not valid UTF-8")]
    NotUtf8 { field: Field },
    #[error("the {field} is missing")]
    Missing { field: Field },
    #[error("the {field} is not a string")]
    NotAString { field: Field },
    #[error("the {field} field is present more than once")]
    Duplicate { field: Field },
    #[error("the JSON body repeats a key")]
    DuplicateJsonKey,
    #[error("the {field} field name appears in another spelling")]
    CaseVariant { field: Field },
    #[error("the {field} contains a control character")]
    ControlCharacter { field: Field },
    #[error("the form body uses a %u escape")]
    PercentU,
    #[error("the form body uses ; between fields")]
    Semicolon,
}

// === impl CredentialsError ===

impl CredentialsError {
    /// Returns true if and only if the body merely failed to parse, so that
    /// `on_unparsed = "forward"` may pass it on. Ambiguous bodies (duplicates,
    /// name variants, control characters, non-standard form syntax) are
    /// never forwarded:
    /// the shop might read the copy we did not check.
    pub fn forwardable(&self) -> bool {
        match self {
            Self::Malformed { .. }
            | Self::NotUtf8 { .. }
            | Self::Missing { .. }
            | Self::NotAString { .. } => true,
            Self::Duplicate { .. }
            | Self::DuplicateJsonKey
            | Self::CaseVariant { .. }
            | Self::ControlCharacter { .. }
            | Self::PercentU
            | Self::Semicolon => false,
        }
    }
}

// === impl Username, Password ===

impl Username {
    pub fn new(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Username(<hidden>)")
    }
}

impl Password {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// === reading ===

/// Reads a login body: refuses repeated framing headers, compressed bodies
/// and foreign content types before reading, stops at `max_body` bytes and
/// at `timeout`. A body refused unread stays [`Unread`] until dropped.
pub async fn read_body(
    parts: &Parts,
    body: Unread,
    route: &LoginRoute,
    timeout: Duration,
) -> Result<LoginBody, BodyError> {
    // The first Content-Type would decide our parse while the shop may read
    // the last one; two lengths or encodings are as ambiguous.
    for name in [CONTENT_TYPE, CONTENT_ENCODING, CONTENT_LENGTH] {
        let values = parts.headers.get_all(&name);
        let repeated =
            values.iter().count() > 1 || values.iter().any(|v| v.as_bytes().contains(&b','));
        if repeated {
            return Err(BodyError::RepeatedHeader { name });
        }
    }
    let encoded = parts
        .headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(BodyError::Encoded);
    }
    let format = resolve_format(parts, route.format).ok_or(BodyError::ContentType)?;
    let limit = route.max_body;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    // Sized once, so that no reallocation leaves an unzeroed copy behind.
    let buffer = Zeroizing::new(Vec::with_capacity(declared.unwrap_or(limit)));
    let bytes = tokio::time::timeout(timeout, collect(body.take(), buffer, limit))
        .await
        .map_err(|_| BodyError::Timeout { after: timeout })??;
    Ok(LoginBody { bytes, format })
}

async fn collect(
    mut body: Incoming,
    mut buffer: Zeroizing<Vec<u8>>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Some(data) = frame.data_ref() {
            if buffer.len() + data.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            if buffer.len() + data.len() > buffer.capacity() {
                // The client sent more than its Content-Length said, or sent
                // no length: grow into a fresh buffer, zeroing the old one.
                let mut grown = Zeroizing::new(Vec::with_capacity(limit));
                grown.extend_from_slice(&buffer);
                buffer = grown;
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(Bytes::from_owner(buffer))
}

/// The body format of a request on a route, or `None` when its
/// `Content-Type` does not fit the route.
fn resolve_format(parts: &Parts, route: BodyFormat) -> Option<BodyFormat> {
    let content_type = parts.headers.get(CONTENT_TYPE)?.to_str().ok()?.as_bytes();
    let essence = content_type.split(|&b| b == b';').next()?.trim_ascii();
    // Media types are case-insensitive (RFC 9110, section 8.3.1).
    let sent = if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        BodyFormat::Form
    } else if is_json(essence) {
        BodyFormat::Json
    } else {
        return None;
    };
    match route {
        BodyFormat::Auto => Some(sent),
        expected => (expected == sent).then_some(sent),
    }
}

/// `application/json`, or a structured `application/...+json` type.
fn is_json(essence: &[u8]) -> bool {
    const APPLICATION: &[u8] = b"application/";
    const SUFFIX: &[u8] = b"+json";
    let starts = essence.len() >= APPLICATION.len()
        && essence[..APPLICATION.len()].eq_ignore_ascii_case(APPLICATION);
    let ends = essence.len() >= APPLICATION.len() + SUFFIX.len()
        && essence[essence.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX);
    essence.eq_ignore_ascii_case(b"application/json") || (starts && ends)
}

// === extraction ===

/// Whether a login body is a login attempt at all: on a route with an
/// `attempt_field`, a form body without it is one of the platform's other
/// forms on the same path, which logs no one in. Doubt makes an attempt
/// (then extraction refuses what it finds ambiguous): a name that is only a
/// variant of the field, PHP's `field[...]` (which sets `$_POST['field']`),
/// and a body the strict form parser refuses anyway.
pub fn is_attempt(body: &LoginBody, route: &LoginRoute) -> bool {
    let Some(field) = &route.attempt_field else {
        return true;
    };
    if body.format == BodyFormat::Json || body.bytes.contains(&b';') || has_percent_u(&body.bytes) {
        return true;
    }
    body.bytes
        .split(|b| *b == b'&')
        .filter_map(|pair| pair.split(|b| *b == b'=').next())
        .any(|raw| {
            let name = decode_name(raw);
            let name = name.trim_ascii_start();
            let base = name.split(|b| *b == b'[').next().unwrap_or_default();
            fieldname::compare(base, field) != NameMatch::Other
        })
}

fn has_percent_u(body: &[u8]) -> bool {
    body.windows(2)
        .any(|w| w[0] == b'%' && w[1].eq_ignore_ascii_case(&b'u'))
}

/// Takes the credentials out of a login body read by [`read_body`].
pub fn extract(body: &LoginBody, route: &LoginRoute) -> Result<Credentials, CredentialsError> {
    let credentials = match body.format {
        BodyFormat::Json => json::extract(&body.bytes, route)?,
        BodyFormat::Form | BodyFormat::Auto => form(&body.bytes, route)?,
    };
    check_controls(credentials.username.as_str().as_bytes(), Field::Username)?;
    check_controls(credentials.password.as_bytes(), Field::Password)?;
    Ok(credentials)
}

fn check_controls(value: &[u8], field: Field) -> Result<(), CredentialsError> {
    match value.iter().any(|b| b.is_ascii_control()) {
        true => Err(CredentialsError::ControlCharacter { field }),
        false => Ok(()),
    }
}

/// `application/x-www-form-urlencoded`, decoded strictly: invalid UTF-8 in a
/// credential is an error, not a replacement character. Browsers encode `;`
/// and `%` in values, so a raw `;` or a `%u` escape is no browser's form.
fn form(body: &[u8], route: &LoginRoute) -> Result<Credentials, CredentialsError> {
    if body.contains(&b';') {
        return Err(CredentialsError::Semicolon);
    }
    if has_percent_u(body) {
        return Err(CredentialsError::PercentU);
    }
    let username_field = field_name(&route.username_field);
    let password_field = field_name(&route.password_field);
    let mut username: Option<Zeroizing<Vec<u8>>> = None;
    let mut password: Option<Zeroizing<Vec<u8>>> = None;
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let name = decode_name(halves.next().unwrap_or_default());
        let value = halves.next().unwrap_or_default();
        for (field, which, slot) in [
            (username_field, Field::Username, &mut username),
            (password_field, Field::Password, &mut password),
        ] {
            match fieldname::compare(&name, field) {
                NameMatch::Same if slot.is_some() => {
                    return Err(CredentialsError::Duplicate { field: which });
                }
                NameMatch::Same => *slot = Some(form_decode(value)),
                NameMatch::Variant => return Err(CredentialsError::CaseVariant { field: which }),
                NameMatch::Other => {}
            }
        }
        let alias = |a: &String| fieldname::compare(&name, field_name(a)) != NameMatch::Other;
        if route.username_aliases.iter().any(alias) {
            return Err(CredentialsError::CaseVariant {
                field: Field::Username,
            });
        }
    }
    let username = username.ok_or(CredentialsError::Missing {
        field: Field::Username,
    })?;
    let password = password.ok_or(CredentialsError::Missing {
        field: Field::Password,
    })?;
    credentials(username, password)
}

/// A field name, decoded only when it has something to decode (names are
/// not secret; most are plain).
fn decode_name(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match raw.iter().any(|&b| b == b'%' || b == b'+') {
        true => std::borrow::Cow::Owned(form_decode(raw).to_vec()),
        false => std::borrow::Cow::Borrowed(raw),
    }
}

/// Percent-decoding with `+` as space, into one buffer zeroed on drop.
///
/// Sized once to the encoded length, which decoding never exceeds: a buffer
/// grown while decoding would leave each smaller copy of the password in
/// freed memory, unzeroed. A `+` is never part of an escape, so the pieces
/// between them decode on their own.
fn form_decode(raw: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut decoded = Zeroizing::new(Vec::with_capacity(raw.len()));
    for (i, piece) in raw.split(|&b| b == b'+').enumerate() {
        if i > 0 {
            decoded.push(b' ');
        }
        decoded.extend(percent_decode(piece));
    }
    decoded
}

fn credentials(
    mut username: Zeroizing<Vec<u8>>,
    password: Zeroizing<Vec<u8>>,
) -> Result<Credentials, CredentialsError> {
    // The buffer becomes the `Username`'s, not a copy of it; on an error it
    // goes back to be zeroed.
    let username = String::from_utf8(std::mem::take(&mut *username)).map_err(|e| {
        *username = e.into_bytes();
        CredentialsError::NotUtf8 {
            field: Field::Username,
        }
    })?;
    if std::str::from_utf8(&password).is_err() {
        return Err(CredentialsError::NotUtf8 {
            field: Field::Password,
        });
    }
    Ok(Credentials {
        username: Username(username),
        password: Password(password),
    })
}

#[cfg(test)]
mod tests;
