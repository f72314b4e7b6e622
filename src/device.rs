//! Device trust: a signed cookie that a browser earns by logging in, and
//! that makes its next login for the same account a known device.
//!
//! A stuffing campaign replays a breach from machines that never logged in
//! to the account, so it holds no such cookie; a customer on their usual
//! browser does. The cookie carries no personal data, only an expiry and an
//! HMAC-SHA256:
//!
//! ```text
//! credgate_device_<slot>=v1.<expiry unix seconds>.<base64url(HMAC(key, "v1." expiry "." user))>
//! ```
//!
//! where `user` is itself an HMAC of the normalised username under the same
//! key, so neither the value nor the name reveals the account without the
//! key. `<slot>` is 8 base64url characters of `user`: one cookie per account
//! on a shared browser, each expiring on its own. Verification is constant
//! time, against the current key and then each previous one, so that keys
//! rotate without forgetting devices: add the new key as the first line of
//! the key file, keep the old ones below it for one `device_cookie_max_age`.
//!
//! Cookie values are never logged.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config;

const NAME_PREFIX: &str = "credgate_device_";
const VERSION: &str = "v1";
/// Bytes of the user hash in the cookie name: 48 bits, 8 base64url
/// characters, enough to keep a shared browser's accounts apart.
const SLOT_BYTES: usize = 6;
/// The shortest key accepted: HMAC-SHA256's block strength.
pub const MIN_KEY_BYTES: usize = 32;

/// Why the device key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read the device key file", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}: {reason}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("{}: no key in the device key file", file.display())]
    Empty { file: PathBuf },
}

/// The keys of the device cookie: the first signs, all verify. Cloning
/// copies the keys.
#[derive(Clone)]
pub struct DeviceKeys {
    /// Current first, then the previous ones.
    keys: Vec<hmac::Key>,
    max_age: Duration,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("keys", &self.keys.len())
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// One account's identity on the device cookie under the current key: what
/// a successful login's cookie is issued for. Holds a keyed hash only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeviceUser([u8; 32]);

impl std::fmt::Debug for DeviceUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceUser(<keyed hash>)")
    }
}

// === impl DeviceKeys ===

impl DeviceKeys {
    /// The keys `[risk]` names, or a random key for this process (with a
    /// warning: replicas and restarts will not know each other's devices).
    pub fn from_config(risk: &config::Risk) -> Result<Self, KeyError> {
        let max_age = risk.device_cookie_max_age.0;
        match &risk.device_key_file {
            Some(path) => Self::load(path, max_age),
            None => {
                tracing::warn!(
                    "risk.device_key_file is not set: device cookies are signed with a random \
                     key of this process, unknown to other replicas and lost on restart"
                );
                Ok(Self::random(max_age))
            }
        }
    }

    /// These keys with a reloaded `device_cookie_max_age`.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Reads a key file: one key a line (hex or base64, at least 32 bytes),
    /// blank lines and `#` comments skipped; the first key signs.
    pub fn load(path: &Path, max_age: Duration) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            file: path.to_owned(),
            source,
        })?;
        warn_if_readable_by_others(path);
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = decode_key(line).map_err(|reason| KeyError::Invalid {
                file: path.to_owned(),
                line: i + 1,
                reason,
            })?;
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, &bytes));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                file: path.to_owned(),
            });
        }
        Ok(Self { keys, max_age })
    }

    /// A fresh random key, known to this process only.
    pub fn random(max_age: Duration) -> Self {
        let mut bytes = [0u8; MIN_KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system random generator works");
        Self {
            keys: vec![hmac::Key::new(hmac::HMAC_SHA256, &bytes)],
            max_age,
        }
    }

    /// The account behind a normalised username, under the current key.
    pub fn user(&self, normalized: &str) -> DeviceUser {
        user_hash(&self.keys[0], normalized)
    }

    /// Returns true if and only if `headers` carry an unexpired cookie,
    /// signed by one of the keys, for the account `normalized`.
    pub fn recognizes(&self, headers: &HeaderMap, normalized: &str, now: SystemTime) -> bool {
        // Most attempts carry no device cookie at all (none of a
        // campaign's do): then no key needs to hash the username.
        if !cookies(headers).any(|(n, _)| n.starts_with(NAME_PREFIX)) {
            return false;
        }
        let now = unix(now);
        let latest = now.saturating_add(self.max_age.as_secs());
        self.keys.iter().any(|key| {
            let user = user_hash(key, normalized);
            let slot = Slot::of(&user);
            cookies(headers)
                .filter(|(n, _)| slot.names(n))
                .any(|(_, value)| verify(key, &user, value, now, latest))
        })
    }

    /// The `Set-Cookie` for a login of `user` that succeeded at `now`.
    pub fn issue(&self, user: DeviceUser, now: SystemTime) -> HeaderValue {
        let max_age = self.max_age.as_secs();
        let expiry = unix(now).saturating_add(max_age);
        let tag = sign(&self.keys[0], &user, expiry);
        // Written piece by piece into one buffer, numbers by itoa: a
        // successful login pays for this on the request path, and `write!`
        // costs more than the signature.
        let mut digits = itoa::Buffer::new();
        let mut cookie = String::with_capacity(160);
        for part in [NAME_PREFIX, Slot::of(&user).as_str(), "=", VERSION, "."] {
            cookie.push_str(part);
        }
        cookie.push_str(digits.format(expiry));
        cookie.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut cookie);
        cookie.push_str("; Path=/; Max-Age=");
        cookie.push_str(digits.format(max_age));
        cookie.push_str("; Secure; HttpOnly; SameSite=Lax");
        HeaderValue::try_from(cookie).expect("a cookie of base64url and digits is a header value")
    }
}

fn user_hash(key: &hmac::Key, normalized: &str) -> DeviceUser {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(b"credgate device user\0");
    ctx.update(normalized.as_bytes());
    let mut user = [0u8; 32];
    user.copy_from_slice(ctx.sign().as_ref());
    DeviceUser(user)
}

/// The part of a cookie's name after [`NAME_PREFIX`]: base64url of the
/// first [`SLOT_BYTES`] of the user hash, on the stack.
struct Slot([u8; 8]);

impl Slot {
    fn of(user: &DeviceUser) -> Self {
        let mut slot = [0u8; 8];
        URL_SAFE_NO_PAD
            .encode_slice(&user.0[..SLOT_BYTES], &mut slot)
            .expect("6 bytes are 8 base64 characters");
        Self(slot)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64url is ASCII")
    }

    /// Returns true if and only if `name` is this slot's cookie name.
    fn names(&self, name: &str) -> bool {
        name.strip_prefix(NAME_PREFIX)
            .is_some_and(|rest| rest.as_bytes() == self.0)
    }
}

fn sign(key: &hmac::Key, user: &DeviceUser, expiry: u64) -> hmac::Tag {
    hmac::sign(key, &message(user, expiry))
}

fn message(user: &DeviceUser, expiry: u64) -> Vec<u8> {
    let mut digits = itoa::Buffer::new();
    let mut message = Vec::with_capacity(64);
    for part in [VERSION, ".", digits.format(expiry), "."] {
        message.extend_from_slice(part.as_bytes());
    }
    message.extend_from_slice(&user.0);
    message
}

/// Checks one cookie value: version, expiry (not past, and not beyond what
/// the current `max_age` allows), then the tag in constant time.
fn verify(key: &hmac::Key, user: &DeviceUser, value: &str, now: u64, latest: u64) -> bool {
    let mut parts = value.split('.');
    let (Some(VERSION), Some(expiry), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expiry) = expiry.parse::<u64>() else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    expiry > now && expiry <= latest && hmac::verify(key, &message(user, expiry), &tag).is_ok()
}

/// The `name=value` pairs of every `Cookie` header (HTTP/2 may split them).
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Hex first (an even run of hex digits), else base64 (standard or
/// URL-safe, padded or not).
fn decode_key(line: &str) -> Result<Vec<u8>, &'static str> {
    let bytes = if line.len() % 2 == 0 && line.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "not hex")?
    } else {
        let trimmed = line.trim_end_matches('=');
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
            .or_else(|_| STANDARD.decode(line))
            .map_err(|_| "neither hex nor base64")?
    };
    match bytes.len() >= MIN_KEY_BYTES {
        true => Ok(bytes),
        false => Err("a key must be at least 32 bytes"),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the device key file is accessible by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);
    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn keys(lines: &str, max_age: Duration) -> DeviceKeys {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        std::fs::write(&path, lines).unwrap();
        DeviceKeys::load(&path, max_age).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// The request headers of a browser holding the cookie in `set_cookie`.
    fn holding(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::try_from(format!("theme=dark; {pair}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_cookie_is_trusted_for_its_user_until_it_expires() {
        let k = keys(HEX_KEY, DAY);
        let now = at(1_000_000);
        let cookie = k.issue(k.user("alice@example.com"), now);
        let text = cookie.to_str().unwrap();
        assert!(text.ends_with("; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Lax"));
        assert!(!text.contains("alice"));
        let headers = holding(&cookie);
        assert!(k.recognizes(&headers, "alice@example.com", now));
        assert!(k.recognizes(&headers, "alice@example.com", at(1_086_399)));
        assert!(!k.recognizes(&headers, "alice@example.com", at(1_086_400)));
        assert!(!k.recognizes(&headers, "bob@example.com", now));
    }

    #[test]
    fn no_device_cookie_is_no_known_device() {
        let k = keys(HEX_KEY, DAY);
        let mut headers = HeaderMap::new();
        assert!(!k.recognizes(&headers, "alice@example.com", at(10)));
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; lang=en"));
        assert!(!k.recognizes(&headers, "alice@example.com", at(10)));
    }

    #[test]
    fn tampered_or_foreign_cookies_are_not_trusted() {
        let k = keys(HEX_KEY, DAY);
        let now = at(1_000_000);
        let cookie = k.issue(k.user("alice@example.com"), now);
        let text = cookie.to_str().unwrap();
        let (pair, _) = text.split_once(';').unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        let mut parts: Vec<String> = value.split('.').map(str::to_owned).collect();
        let later_expiry = format!("{name}=v1.{}.{}", 1_000_001 + 86400, parts[2]);
        let mut tag = parts[2].as_bytes().to_vec();
        tag[3] = if tag[3] == b'A' { b'B' } else { b'A' };
        parts[2] = String::from_utf8(tag).unwrap();
        let flipped_tag = format!("{name}={}", parts.join("."));
        let other_key = keys(&HEX_KEY.replace("00", "ff"), DAY);
        let foreign = other_key.issue(other_key.user("alice@example.com"), now);
        let foreign_pair = foreign
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        for bad in [
            later_expiry,
            flipped_tag,
            foreign_pair,
            format!("{name}=v2.{}", &value[3..]),
            format!("{name}="),
            format!("{name}=v1.x.y"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::try_from(bad.clone()).unwrap());
            assert!(!k.recognizes(&headers, "alice@example.com", now), "{bad}");
        }
    }

    #[test]
    fn previous_keys_still_verify_and_new_cookies_use_the_first() {
        let old_key = "ab".repeat(32);
        let old = keys(&old_key, DAY);
        let now = at(5_000_000);
        let cookie = old.issue(old.user("carol"), now);
        let rotated = keys(&format!("# rotated\n{HEX_KEY}\n\n{old_key}\n"), DAY);
        assert!(rotated.recognizes(&holding(&cookie), "carol", now));
        let fresh = rotated.issue(rotated.user("carol"), now);
        assert!(!old.recognizes(&holding(&fresh), "carol", now));
        let dropped = keys(HEX_KEY, DAY);
        assert!(!dropped.recognizes(&holding(&cookie), "carol", now));
    }

    #[test]
    fn a_shorter_max_age_retires_longer_cookies() {
        let long = keys(HEX_KEY, DAY * 90);
        let now = at(1_000_000);
        let cookie = long.issue(long.user("dave"), now);
        let short = keys(HEX_KEY, DAY);
        assert!(!short.recognizes(&holding(&cookie), "dave", now));
    }

    #[test]
    fn key_files_take_hex_or_base64_and_name_their_errors() {
        let b64 = STANDARD.encode([7u8; 32]);
        let url = URL_SAFE_NO_PAD.encode([0xfbu8; 40]);
        assert_eq!(keys(&format!("{b64}\n{url}\n"), DAY).keys.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        for (text, reason) in [
            ("# only a comment\n", "no key"),
            ("00112233\n", "line 1: a key must be at least 32 bytes"),
            (
                &format!("{HEX_KEY}\nnot a key!\n") as &str,
                "line 2: neither hex nor base64",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = DeviceKeys::load(&path, DAY).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(reason), "{e}");
        }
        let missing = DeviceKeys::load(&dir.path().join("absent"), DAY).unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");
    }

    #[test]
    fn random_keys_differ_per_process() {
        let a = DeviceKeys::random(DAY);
        let b = DeviceKeys::random(DAY);
        let cookie = a.issue(a.user("erin"), at(10));
        assert!(a.recognizes(&holding(&cookie), "erin", at(10)));
        assert!(!b.recognizes(&holding(&cookie), "erin", at(10)));
    }
}
