//! Which host does a request address? Exactly one answer, or a 400.
//!
//! A proxy and the shop behind it must agree on the target of every request.
//! When a request carries two `Host` headers, or an absolute-form target or an
//! HTTP/2 `:authority` that names another host than `Host`, the proxy and the
//! shop may each pick a different one: the classic request-smuggling and
//! routing-confusion setup. Such requests are refused, not repaired.

use http::header::{HeaderValue, HOST};
use http::uri::Authority;
use http::{Request, Version};

/// Why a request's target host is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmbiguousHost {
    #[error("the request names no host")]
    Missing,
    #[error("the request carries more than one Host header")]
    Duplicate,
    #[error("the Host header is not a valid host")]
    Invalid,
    #[error("the request target names another host than the Host header")]
    Mismatch,
}

/// Returns the one host the request addresses, as the `Host` value to send
/// upstream.
pub fn resolve<B>(req: &Request<B>) -> Result<HeaderValue, AmbiguousHost> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AmbiguousHost::Duplicate);
    }
    if let Some(host) = host {
        let valid = host
            .to_str()
            .ok()
            .filter(|h| !h.is_empty())
            .and_then(|h| h.parse::<Authority>().ok());
        if valid.is_none() {
            return Err(AmbiguousHost::Invalid);
        }
    }
    match (req.uri().authority(), host) {
        (None, None) => Err(AmbiguousHost::Missing),
        (None, Some(host)) => Ok(host.clone()),
        // HTTP/2 carries the host in `:authority`; HTTP/1.1 must send `Host`.
        (Some(authority), None) if req.version() == Version::HTTP_2 => {
            HeaderValue::from_str(authority.as_str()).map_err(|_| AmbiguousHost::Invalid)
        }
        (Some(_), None) => Err(AmbiguousHost::Missing),
        (Some(authority), Some(host)) => {
            match host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes())
            {
                true => Ok(host.clone()),
                false => Err(AmbiguousHost::Mismatch),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(uri);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap()
    }

    type Case<'a> = (
        Version,
        &'a str,
        &'a [&'a str],
        Result<&'a str, AmbiguousHost>,
    );

    #[test]
    fn table() {
        use AmbiguousHost::*;
        let h1 = Version::HTTP_11;
        let h2 = Version::HTTP_2;
        let cases: &[Case] = &[
            (h1, "/", &["shop.test"], Ok("shop.test")),
            (h1, "/", &[], Err(Missing)),
            (h1, "/", &["a.test", "b.test"], Err(Duplicate)),
            (h1, "/", &["a.test", "a.test"], Err(Duplicate)),
            (h1, "/", &[""], Err(Invalid)),
            (h1, "/", &["a b"], Err(Invalid)),
            (h1, "http://shop.test/x", &["shop.test"], Ok("shop.test")),
            (h1, "http://SHOP.test/x", &["shop.TEST"], Ok("shop.TEST")),
            (h1, "http://evil.test/x", &["shop.test"], Err(Mismatch)),
            (h1, "http://shop.test/x", &[], Err(Missing)),
            (h2, "https://shop.test/x", &[], Ok("shop.test")),
            (
                h2,
                "https://shop.test:8443/x",
                &["shop.test:8443"],
                Ok("shop.test:8443"),
            ),
            (h2, "https://shop.test/x", &["evil.test"], Err(Mismatch)),
        ];
        for (version, uri, hosts, want) in cases {
            let got = resolve(&request(*version, uri, hosts));
            let got = got.as_ref().map(|v| v.to_str().unwrap()).map_err(|e| *e);
            assert_eq!(got, *want, "{version:?} {uri} {hosts:?}");
        }
    }
}
