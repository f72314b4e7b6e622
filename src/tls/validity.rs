//! A certificate's `notAfter`, read from its DER: enough of X.509 to walk
//! to the validity field (RFC 5280 §4.1), nothing more. rustls checks the
//! certificate; this only tells operators when it runs out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When `der` (one X.509 certificate) expires; `None` if it does not parse.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, certificate, _) = element(der)?;
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    // version [0] (optional), serialNumber, signature, issuer, validity.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (_, validity, _) = element(rest)?;
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    parse_time(tag, time)
}

/// How close to its expiry a certificate earns a warning: the alert's window.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// A warning for a certificate that expired or expires within
/// [`EXPIRY_WARNING`] of `now`; `None` for one that is fine.
pub fn expiry_warning(not_after: SystemTime, now: SystemTime) -> Option<String> {
    let when = humantime::format_rfc3339_seconds(not_after);
    match not_after.duration_since(now) {
        Err(_) => Some(format!("the TLS certificate expired on {when}")),
        Ok(left) if left < EXPIRY_WARNING => Some(format!(
            "the TLS certificate expires on {when}, in {} days",
            left.as_secs() / 86_400
        )),
        Ok(_) => None,
    }
}

/// One DER element: its tag, its content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
            (len, &rest[n..])
        }
        _ => return None,
    };
    let content = rest.get(..len)?;
    Some((tag, content, &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn parse_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_rcgen_wrote() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let expected = UNIX_EPOCH + Duration::from_secs(1_941_840_000);
        assert_eq!(not_after(cert.der()), Some(expected));
    }

    #[test]
    fn warns_of_an_expired_or_soon_expiring_certificate() {
        let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let day = Duration::from_secs(86_400);
        let warning = |at| expiry_warning(at, now);
        assert!(warning(now - day).unwrap().contains("expired on"));
        assert!(warning(now + 3 * day).unwrap().contains("in 3 days"));
        assert_eq!(warning(now + 15 * day), None);
    }

    #[test]
    fn both_time_forms_and_garbage() {
        let at = |tag, text: &str| parse_time(tag, text.as_bytes());
        let secs = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0x17, "700101000000Z"), secs(0));
        assert_eq!(at(0x18, "20500101000000Z"), secs(2_524_608_000));
        assert_eq!(at(0x17, "491231235959Z"), secs(2_524_607_999));
        assert_eq!(at(0x17, "7001010000Z"), None);
        assert_eq!(not_after(b"\x30\x05junk"), None);
        assert_eq!(not_after(b""), None);
    }
}
