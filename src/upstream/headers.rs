//! The forwarding rules for header fields: what is removed on the way to
//! the shop and back, and the forwarded headers credgate sets.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::Hop;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
/// Forwarding them would let a client steer our connection to the shop.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including any that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one look at each field present is cheaper
    // than hashing every listed name (`Connection` is on the list).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The protocol a message asks to switch to: its `Upgrade` value, when
/// `Connection` names `upgrade`.
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts back the two headers of an upgrade, and no other hop-by-hop one.
pub(super) fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// HTTP/2 may split `Cookie` into one field per cookie; an HTTP/1.1 shop
/// expects one field, so they are joined with `; ` (RFC 9113 §8.2.3).
pub(super) fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().nth(1).is_none() {
        return;
    }
    let mut joined = Vec::with_capacity(256);
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// The client-address headers an untrusted peer's request loses
/// (`server.strip_client_headers`). A set in a `HeaderMap`: every request
/// looks each of its fields up in it, and `http`'s hash of a header name is
/// a fraction of the cost of comparing it with twenty names one by one.
#[derive(Debug, Clone, Default)]
pub(super) struct ClientHeaders(HeaderMap<()>);

impl FromIterator<HeaderName> for ClientHeaders {
    fn from_iter<I: IntoIterator<Item = HeaderName>>(names: I) -> Self {
        Self(names.into_iter().map(|name| (name, ())).collect())
    }
}

impl ClientHeaders {
    /// Whether the shop would read `name` as one of these headers, or as a
    /// forwarded header we set: a CGI-style stack (PHP, Rack, WSGI) reads
    /// `_` as `-` (`X_Forwarded_For`, `X_Real_IP`).
    fn covers(&self, name: &HeaderName) -> bool {
        if self.0.contains_key(name) {
            return true;
        }
        if !name.as_str().contains('_') {
            return false;
        }
        let dashed = name.as_str().replace('_', "-");
        self.0.contains_key(dashed.as_str())
            || [X_FORWARDED_FOR, X_FORWARDED_PROTO, header::FORWARDED]
                .iter()
                .any(|n| n.as_str() == dashed)
    }
}

/// Removes the client-address headers of an untrusted peer, under any
/// spelling its shop would read them by.
pub(super) fn strip_client_headers(headers: &mut HeaderMap, names: &ClientHeaders) {
    // Most requests carry none: an empty Vec allocates nothing.
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| names.covers(name))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Makes the headers fit for the shop: hop-by-hop ones removed, `Host` set to
/// what the client asked for, forwarded headers extended (trusted peer) or
/// replaced (anyone else, whose claims we never pass on).
pub(super) fn prepare_headers(headers: &mut HeaderMap, host: HeaderValue, hop: Hop) {
    strip_hop_by_hop(headers);
    let peer = hop.peer.to_canonical();
    let mut xff = forwarded_prefix(headers, &X_FORWARDED_FOR, hop.peer_trusted);
    push_ip(&mut xff, peer);
    set(headers, X_FORWARDED_FOR, xff);

    let mut forwarded = forwarded_prefix(headers, &header::FORWARDED, hop.peer_trusted);
    forwarded.extend_from_slice(b"for=");
    match peer {
        IpAddr::V4(_) => push_ip(&mut forwarded, peer),
        IpAddr::V6(_) => {
            forwarded.extend_from_slice(b"\"[");
            push_ip(&mut forwarded, peer);
            forwarded.extend_from_slice(b"]\"");
        }
    }
    // A valid Host holds no quote or backslash (it parsed as an authority).
    let host_text = host.to_str().unwrap_or("");
    for part in [";host=\"", host_text, "\";proto=", hop.scheme] {
        forwarded.extend_from_slice(part.as_bytes());
    }
    set(headers, header::FORWARDED, forwarded);

    if !(hop.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.scheme));
    }
    headers.insert(header::HOST, host);
}

/// The existing chain of a forwarded header, followed by `, `, when it is to
/// be extended; empty when it is to be replaced. Bytes, not text: an entry
/// with a non-ASCII byte is passed on as it came, not dropped with its
/// neighbours.
fn forwarded_prefix(headers: &HeaderMap, name: &HeaderName, extend: bool) -> Vec<u8> {
    let mut value = Vec::with_capacity(64);
    if extend {
        for previous in headers.get_all(name) {
            value.extend_from_slice(previous.as_bytes());
            value.extend_from_slice(b", ");
        }
    }
    value
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: Vec<u8>) {
    // Every part is a header value we just read, or text built from an
    // address, a validated host and a fixed scheme. The buffer becomes the
    // value without a copy.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(name, v);
    }
}

/// Appends `ip` as text. IPv4 by hand: `Display` goes through the
/// formatter's padding machinery, twice per request here.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    use std::io::Write as _;

    let IpAddr::V4(v4) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(peer: &str, trusted: bool) -> Hop {
        Hop {
            peer: peer.parse().unwrap(),
            peer_trusted: trusted,
            scheme: "https",
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn untrusted_peer_forwarded_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "http"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        prepare_headers(
            &mut h,
            HeaderValue::from_static("shop.test"),
            hop("203.0.113.9", false),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;host=\"shop.test\";proto=https"
        );
        assert_eq!(h["host"], "shop.test");
    }

    #[test]
    fn h2_cookies_are_joined_and_client_address_headers_stripped() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("x-kept", "1")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut h = map(&[
            ("x-real-ip", "6.6.6.6"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("x_kept", "1"),
        ]);
        let names = ClientHeaders::from_iter([HeaderName::from_static("x-real-ip")]);
        strip_client_headers(&mut h, &names);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x_kept"], "1");
    }

    #[test]
    fn non_ascii_chains_are_extended_byte_for_byte() {
        let mut h = HeaderMap::new();
        let chain = HeaderValue::from_bytes(b"\xe9vil, 198.51.100.7").unwrap();
        h.insert("x-forwarded-for", chain);
        prepare_headers(
            &mut h,
            HeaderValue::from_static("shop.test"),
            hop("10.0.0.1", true),
        );
        assert_eq!(
            h["x-forwarded-for"].as_bytes(),
            b"\xe9vil, 198.51.100.7, 10.0.0.1"
        );
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "203.0.113.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = b"x ".to_vec();
            push_ip(&mut out, ip);
            assert_eq!(out, format!("x {ip}").into_bytes());
        }
    }

    #[test]
    fn trusted_peer_forwarded_headers_are_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        prepare_headers(
            &mut h,
            HeaderValue::from_static("shop.test"),
            hop("::1", true),
        );
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, ::1");
        assert_eq!(
            h["forwarded"],
            "for=198.51.100.7, for=\"[::1]\";host=\"shop.test\";proto=https"
        );
    }
}
