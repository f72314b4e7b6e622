//! The access log: one line per request at `info` on the target
//! [`TARGET`], so that it can be filtered or sent apart from the rest.
//! JSON fields by default, or nginx's `combined` format followed by
//! credgate's own fields.
//!
//! The line is only built when the target is enabled and the request is
//! sampled: a pass-through request that is not logged costs an atomic
//! increment.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use crate::config::{self, AccessFormat};

/// The `tracing` target of access-log lines.
pub const TARGET: &str = "credgate::access";

/// The access log's settings and counters. One per process.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    sample: Sampler,
    ids: RequestIds,
}

/// One request, as the access log writes it. Borrowed from the request and
/// its record; `path` must already be [`redacted`](redact_query).
#[derive(Debug)]
pub struct Entry<'a> {
    pub client: IpAddr,
    pub peer: SocketAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub protocol: &'static str,
    pub status: u16,
    /// The declared request and response body sizes: `Content-Length` or
    /// an exact size hint; `None` for a streamed body of unknown length.
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub upstream: Option<Duration>,
    pub total: Duration,
    pub route: &'a str,
    pub decision: &'a str,
    pub verdict: Option<&'static str>,
    pub risk: Option<&'static str>,
    /// The client's JA4 and HTTP fingerprint: which software sent it.
    pub ja4: Option<&'a str>,
    pub http_fingerprint: Option<&'a str>,
    pub request_id: &'a str,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// Logs an even share of pass-through requests: of every `1 / rate`
/// requests, one. A counter, not a random draw, so the share is exact and
/// the cost an atomic increment.
#[derive(Debug)]
struct Sampler {
    rate: f64,
    seen: AtomicU64,
}

/// Request ids: a random per-process prefix and a counter, unique without
/// coordination and cheap to make.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

// === impl AccessLog ===

impl AccessLog {
    pub fn new(log: &config::Log) -> Self {
        Self {
            format: log.access_format,
            sample: Sampler {
                rate: log.passthrough_sample,
                seen: AtomicU64::new(0),
            },
            ids: RequestIds::new(),
        }
    }

    /// Returns true if and only if access lines are written at all: what a
    /// request checks before it keeps anything for its line.
    pub fn enabled(&self) -> bool {
        tracing::enabled!(target: TARGET, tracing::Level::INFO)
    }

    /// Returns true if and only if this request's line should be written:
    /// a login attempt always, a pass-through request when sampled.
    pub fn sampled(&self, login: bool) -> bool {
        login || self.sample.take()
    }

    /// A fresh request id.
    pub fn next_id(&self) -> HeaderValue {
        self.ids.next()
    }

    /// Writes `entry`'s line.
    pub fn write(&self, e: &Entry<'_>) {
        match self.format {
            AccessFormat::Json => tracing::info!(
                target: TARGET,
                client = %e.client,
                peer = %e.peer,
                method = e.method,
                host = e.host,
                path = e.path,
                protocol = e.protocol,
                status = e.status,
                bytes_in = e.bytes_in,
                bytes_out = e.bytes_out,
                upstream_seconds = e.upstream.map(|d| d.as_secs_f64()),
                total_seconds = e.total.as_secs_f64(),
                route = e.route,
                decision = e.decision,
                verdict = e.verdict,
                risk = e.risk,
                ja4 = e.ja4,
                http_fingerprint = e.http_fingerprint,
                request_id = e.request_id,
                "access"
            ),
            AccessFormat::Combined => {
                let line = combined(e, SystemTime::now());
                tracing::info!(target: TARGET, "{line}");
            }
        }
    }
}

// === impl Sampler ===

impl Sampler {
    fn take(&self) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.rate).floor() > (n * self.rate).floor()
    }
}

// === impl RequestIds ===

impl RequestIds {
    pub fn new() -> Self {
        let mut random = [0u8; 6];
        // A failed draw leaves zeros: ids stay unique within the process.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let mut prefix = String::with_capacity(12);
        for b in random {
            let _ = write!(prefix, "{b:02x}");
        }
        Self {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// The next id, `<prefix>-<counter in hex>`, as the header value it
    /// is forwarded in. Written by hand rather than with `format!`: every
    /// request pays for it, and the bytes become the value without a copy.
    pub fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = Vec::with_capacity(self.prefix.len() + 17);
        id.extend_from_slice(self.prefix.as_bytes());
        id.push(b'-');
        push_hex(&mut id, n);
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id))
            .expect("hex and a dash are a valid header value")
    }
}

/// `n` in lowercase hex, without leading zeros (as `{n:x}`).
fn push_hex(out: &mut Vec<u8>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[((n >> (i * 4)) & 0xf) as usize]);
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// `path?query` with the value of every query parameter named in `secret`
/// replaced by `***`, so that a credential sent in a query string is never
/// logged.
pub fn redact_query(path: &str, query: Option<&str>, secret: &[&str]) -> String {
    let Some(query) = query else {
        return path.to_owned();
    };
    let mut out = String::with_capacity(path.len() + 1 + query.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (key, _) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        if secret.iter().any(|s| *s == name.replace('+', " ")) {
            out.push_str(key);
            out.push_str("=***");
        } else {
            out.push_str(pair);
        }
    }
    out
}

/// nginx's `combined` line, then credgate's fields as `key=value`.
fn combined(e: &Entry<'_>, now: SystemTime) -> String {
    let dash = |v: Option<&str>| v.unwrap_or("-").replace('"', "\\\"");
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64()));
    format!(
        "{client} - - [{time}] \"{method} {path} {protocol}\" {status} {bytes_out} \"{referer}\" \"{agent}\" \
         host={host} peer={peer} bytes_in={bytes_in} upstream_time={upstream} request_time={total} \
         route={route} decision={decision} verdict={verdict} risk={risk} request_id={id} \
         ja4={ja4} http_fingerprint={http}",
        client = e.client,
        time = nginx_time(now),
        method = e.method,
        path = e.path,
        protocol = e.protocol,
        status = e.status,
        bytes_out = e.bytes_out.unwrap_or(0),
        referer = dash(e.referer),
        agent = dash(e.user_agent),
        host = e.host,
        peer = e.peer,
        bytes_in = e.bytes_in.map_or("-".into(), |b| b.to_string()),
        upstream = secs(e.upstream),
        total = secs(Some(e.total)),
        route = e.route,
        decision = e.decision,
        verdict = e.verdict.unwrap_or("-"),
        risk = e.risk.unwrap_or("-"),
        id = e.request_id,
        ja4 = e.ja4.unwrap_or("-"),
        http = e.http_fingerprint.unwrap_or("-"),
    )
}

/// `01/Dec/2026:15:35:59 +0000`, nginx's `$time_local` in UTC.
fn nginx_time(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `2026-12-01T15:35:59Z`
    let iso = humantime::format_rfc3339_seconds(now).to_string();
    let month: usize = iso[5..7].parse().unwrap_or(1);
    format!(
        "{}/{}/{}:{} +0000",
        &iso[8..10],
        MONTHS[month.clamp(1, 12) - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str) -> Entry<'a> {
        Entry {
            client: "203.0.113.7".parse().unwrap(),
            peer: "127.0.0.1:5000".parse().unwrap(),
            method: "POST",
            host: "shop.example",
            path,
            protocol: "HTTP/1.1",
            status: 403,
            bytes_in: Some(31),
            bytes_out: Some(120),
            upstream: None,
            total: Duration::from_millis(2),
            route: "login",
            decision: "block",
            verdict: Some("leaked_pair"),
            risk: None,
            ja4: Some("t13d1516h2_8daaf6152771_02713d6af862"),
            http_fingerprint: None,
            request_id: "abc-1",
            referer: None,
            user_agent: Some("curl/8 \"x\""),
        }
    }

    #[test]
    fn combined_starts_as_nginx_writes_it_and_carries_our_fields() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_603_359);
        let line = combined(&entry("/login"), at);
        assert_eq!(
            line,
            "203.0.113.7 - - [01/Dec/2025:15:35:59 +0000] \"POST /login HTTP/1.1\" 403 120 \"-\" \"curl/8 \\\"x\\\"\" \
             host=shop.example peer=127.0.0.1:5000 bytes_in=31 upstream_time=- request_time=0.002 \
             route=login decision=block verdict=leaked_pair risk=- request_id=abc-1 \
             ja4=t13d1516h2_8daaf6152771_02713d6af862 http_fingerprint=-"
        );
    }

    #[test]
    fn credential_query_values_are_redacted() {
        let secret = ["username", "password"];
        let cases = [
            ("/login", None, "/login"),
            ("/login", Some("next=/cart"), "/login?next=/cart"),
            (
                "/login",
                Some("password=hunter2&next=/&user%6eame=bob"),
                "/login?password=***&next=/&user%6eame=***",
            ),
            ("/login", Some("password"), "/login?password=***"),
        ];
        for (path, query, want) in cases {
            assert_eq!(redact_query(path, query, &secret), want, "{query:?}");
        }
    }

    #[test]
    fn sampling_logs_an_even_share() {
        let sampler = |rate| Sampler {
            rate,
            seen: AtomicU64::new(0),
        };
        for (rate, want) in [(1.0, 100), (0.0, 0), (0.1, 10), (0.25, 25)] {
            let s = sampler(rate);
            assert_eq!((0..100).filter(|_| s.take()).count(), want, "{rate}");
        }
    }

    #[test]
    fn request_ids_are_unique_and_share_the_process_prefix() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.split('-').next(), b.split('-').next());
        assert_eq!(a.len(), 12 + 2);
    }

    #[test]
    fn hex_is_written_as_format_writes_it() {
        for n in [0, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{n:x}"));
        }
    }
}
