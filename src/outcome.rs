//! Did the login work? The shop's response, read the way the operator
//! described the shop's failures (`failure_status`, `failure_redirect`,
//! `failure_header`).

use http::header::LOCATION;
use http::{HeaderName, Response, StatusCode, Uri};

use crate::config;

/// What the shop said about a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    Failure,
    /// Neither: a server error, an unexpected status.
    Unknown,
}

impl LoginOutcome {
    pub const ALL: [LoginOutcome; 3] = [Self::Success, Self::Failure, Self::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Unknown => "unknown",
        }
    }

    /// `Some(true)` for a failure, `Some(false)` for a success.
    pub fn failed(self) -> Option<bool> {
        match self {
            Self::Success => Some(false),
            Self::Failure => Some(true),
            Self::Unknown => None,
        }
    }
}

/// How one login route's shop says "wrong password".
#[derive(Debug, Clone)]
pub struct FailureSigns {
    statuses: Vec<StatusCode>,
    redirect: Option<String>,
    header: Option<HeaderName>,
}

impl FailureSigns {
    pub fn new(login: &config::Login) -> Self {
        Self {
            statuses: login
                .failure_status
                .iter()
                .filter_map(|s| StatusCode::from_u16(*s).ok())
                .collect(),
            redirect: login.failure_redirect.clone(),
            header: login.failure_header.as_ref().map(|h| h.0.clone()),
        }
    }

    /// Classifies the shop's response to a login attempt.
    pub fn classify<B>(&self, response: &Response<B>) -> LoginOutcome {
        let status = response.status();
        let headers = response.headers();
        let failed_redirect = self.redirect.as_deref().is_some_and(|prefix| {
            status.is_redirection()
                && headers
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .is_some_and(|l| redirects_to(l, prefix))
        });
        let failed_header = self
            .header
            .as_ref()
            .is_some_and(|h| headers.contains_key(h));
        if self.statuses.contains(&status) || failed_redirect || failed_header {
            LoginOutcome::Failure
        } else if status.is_success() || status.is_redirection() {
            LoginOutcome::Success
        } else {
            LoginOutcome::Unknown
        }
    }
}

/// Whether a `Location` starts with `prefix`, or, absolute, its path does:
/// Magento and others redirect to `https://shop.example/customer/account/login/`
/// where the operator (or a preset) knows only the path.
fn redirects_to(location: &str, prefix: &str) -> bool {
    location.starts_with(prefix)
        || location.parse::<Uri>().ok().is_some_and(|uri| {
            uri.scheme().is_some()
                && uri
                    .path_and_query()
                    .is_some_and(|p| p.as_str().starts_with(prefix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signs(extra: &str) -> FailureSigns {
        let toml = format!("path = \"/login\"\n{extra}");
        FailureSigns::new(&toml::from_str(&toml).unwrap())
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn classification_table() {
        use LoginOutcome::*;
        let plain = signs("");
        let redirect = signs("failure_redirect = \"/login?error\"");
        let header = signs("failure_header = \"X-Login-Failed\"");
        let cases = [
            (&plain, response(200, &[]), Success),
            (&plain, response(302, &[("location", "/account")]), Success),
            (&plain, response(401, &[]), Failure),
            (&plain, response(403, &[]), Failure),
            (&plain, response(429, &[]), Unknown),
            (&plain, response(500, &[]), Unknown),
            (
                &redirect,
                response(302, &[("location", "/login?error=1")]),
                Failure,
            ),
            (
                &redirect,
                response(302, &[("location", "/account")]),
                Success,
            ),
            (
                &redirect,
                response(302, &[("location", "https://shop.example/login?error=1")]),
                Failure,
            ),
            (
                &redirect,
                response(302, &[("location", "https://shop.example/account")]),
                Success,
            ),
            (
                &redirect,
                response(302, &[("location", "/account?next=https://x/login?error")]),
                Success,
            ),
            (&header, response(200, &[("x-login-failed", "1")]), Failure),
            (&header, response(200, &[]), Success),
        ];
        for (i, (signs, response, want)) in cases.into_iter().enumerate() {
            assert_eq!(signs.classify(&response), want, "case {i}");
        }
    }
}
