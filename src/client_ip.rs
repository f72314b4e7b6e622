//! Who is the client? The TCP peer, unless the peer is a trusted proxy.
//!
//! `X-Forwarded-For` is a list anyone can write. Only the entries appended by
//! proxies we operate are true, so the chain is believed only when the TCP peer
//! is listed in `trusted_proxies`, and then only up to the rightmost address
//! that is *not* a trusted proxy: everything left of it was written by the
//! client itself. Anything else would let an attacker pick the address that
//! every limit and ban is keyed on.
//!
//! The header is read as bytes, entry by entry: one entry that is not an
//! address (a non-ASCII byte, garbage a client wrote) spoils only itself.
//! If it spoiled the whole header, the client would become the load
//! balancer, and every limit and ban would key on the load balancer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The address credgate attributes a request to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The networks whose forwarded headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Returns true if and only if `ip` is inside a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Resolves the client address of a request that arrived from `peer`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientIp {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return ClientIp(peer);
        }
        // Walk the chain right to left; each hop we trust vouches for the one
        // before it. A malformed entry ends the walk: nothing left of it can
        // be attributed, so the last vouched-for hop is the best answer.
        let mut client = peer;
        for entry in forwarded_for(headers).rev() {
            let Some(ip) = parse_hop(entry) else { break };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        ClientIp(client)
    }
}

/// The entries of every `X-Forwarded-For` header, in order, as bytes.
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &[u8]> {
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    entries.into_iter()
}

/// An address as proxies write it: bare, with a port, or bracketed IPv6.
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?;
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            let value = http::HeaderValue::from_bytes(&v.replace('~', "\u{e9}").into_bytes());
            h.append("x-forwarded-for", value.unwrap());
        }
        h
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn resolves_the_rightmost_untrusted_hop() {
        let cases: &[(&str, &[&str], &str)] = &[
            // untrusted peer: its header is ignored
            ("203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            // trusted peer, no header
            ("10.0.0.1", &[], "10.0.0.1"),
            // trusted peer, one hop
            ("10.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            // client-forged prefix is skipped: rightmost untrusted wins
            (
                "10.0.0.1",
                &["6.6.6.6, 198.51.100.7, 10.1.1.1"],
                "198.51.100.7",
            ),
            // several headers form one chain
            ("10.0.0.1", &["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
            // every hop trusted: the leftmost one
            ("10.0.0.1", &["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
            // garbage stops the walk at the last vouched hop
            ("10.0.0.1", &["6.6.6.6, bogus, 10.2.2.2"], "10.2.2.2"),
            // ports and brackets
            ("10.0.0.1", &["198.51.100.7:5555"], "198.51.100.7"),
            ("::1", &["[2001:db8::1]:443"], "2001:db8::1"),
            // IPv4-mapped IPv6 peer counts as its IPv4 address
            ("::ffff:10.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            // a non-ASCII entry (`~` is written as `é`) left of the client
            // hides nothing, in the same header or another one
            ("10.0.0.1", &["~, 198.51.100.7, 10.1.1.1"], "198.51.100.7"),
            ("10.0.0.1", &["~", "198.51.100.7"], "198.51.100.7"),
            ("10.0.0.1", &["6.6.6.~, 198.51.100.7"], "198.51.100.7"),
        ];
        for (peer, xff, want) in cases {
            let got = trusted().resolve(ip(peer), &headers(xff));
            assert_eq!(got, ClientIp(ip(want)), "peer {peer}, xff {xff:?}");
        }
    }
}
