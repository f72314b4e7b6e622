//! Which requests are login attempts, and which may not be routed at all?
//!
//! Matching must not be bypassable. The shop's router may well treat
//! `/login/`, `//login`, `/Login`, `/login;jsessionid=1`, `/%6Cogin`,
//! `/a/../login`, `/login.json` or `/login%20` as its login page; if credgate
//! compared raw paths, each of those would carry credentials past every
//! check. So the path is normalised the way a lenient router would read it
//! (percent-decoding, collapsed and dot segments, matrix parameters dropped,
//! backslashes as slashes, optional trailing slash, trailing dots and spaces,
//! a `.format` suffix), and a path that normalises to a login route is one.
//! Over-matching is the safe error: a request wrongly taken for a login is
//! inspected; a login wrongly taken for something else is not.
//!
//! A login path is protected for every method: the methods of the route are
//! inspected, and any other method may only fetch the page (no body, no
//! credential in the query). Some requests are refused on every route, as
//! nginx and Envoy refuse them: a control byte in the path, raw or encoded,
//! and a body on a method that many shops read without one (a body the shop
//! ignores would be read from the kept-alive connection as the next request).

use std::borrow::Cow;

use http::header::HeaderValue;
use http::{Method, Request};
use hyper::body::Body;
use percent_encoding::percent_decode_str;

use crate::config::{self, BodyFormat};
use crate::fieldname::{self, Field, NameMatch};
use crate::outcome::FailureSigns;

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// A login route's path, on a method it inspects.
    Login(&'a LoginRoute),
    /// A login route's path, on another method: the page itself, fetched.
    LoginPage(&'a LoginRoute),
    Passthrough,
}

/// One protected login endpoint, ready for matching.
#[derive(Debug, Clone)]
pub struct LoginRoute {
    /// Position in the configuration: the route's slot in per-route tables.
    pub index: usize,
    /// The `route` label of metrics: from the config, or derived from the path.
    pub name: String,
    path: String,
    case_sensitive: bool,
    match_suffix: bool,
    match_subpaths: bool,
    methods: Vec<Method>,
    /// `methods` as an `Allow` header, for the 405 of other methods.
    allow: HeaderValue,
    pub format: BodyFormat,
    /// A form field name, or a JSON pointer such as `/user/email`.
    pub username_field: String,
    pub password_field: String,
    pub max_body: usize,
    /// How the shop says the login failed.
    pub failure: FailureSigns,
    /// A form body without this field is no login attempt.
    pub attempt_field: Option<String>,
    /// Other names the shop reads the username from: refused.
    pub username_aliases: Vec<String>,
}

/// Why the `[[login]]` tables do not make a set of routes.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("key `login[{index}].name`: {name:?} must be [a-z0-9_]+, not \"passthrough\"")]
    Name { index: usize, name: String },
    #[error("key `login[{index}].path`: the route {name:?} repeats the route {other:?}")]
    Repeated {
        index: usize,
        name: String,
        other: String,
    },
}

/// Why a request may not be routed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteRefusal {
    #[error("the request path contains a control character")]
    ControlInPath,
    #[error("a {method} request must not carry a body")]
    BodyNotAllowed { method: Method },
    #[error("{method} requests to a login path must not carry a body")]
    NotALoginMethod { method: Method, allow: HeaderValue },
    #[error("the {field} field name appears in the query string")]
    CredentialInQuery { field: Field },
    #[error("a login path is never upgraded to another protocol")]
    UpgradeOnLogin,
}

/// Methods that many shops serve without reading a body.
const BODILESS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::DELETE,
    Method::TRACE,
];

/// The login routes of the configuration, and the methods allowed a body.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    logins: Vec<LoginRoute>,
    /// `server.allow_body_on`.
    bodies_on: Vec<Method>,
}

impl<'a> Route<'a> {
    /// The login route, if this is one.
    pub fn login(self) -> Option<&'a LoginRoute> {
        match self {
            Self::Login(route) => Some(route),
            Self::LoginPage(_) | Self::Passthrough => None,
        }
    }

    /// The login route whose path this is, whatever the method.
    fn path_of(self) -> Option<&'a LoginRoute> {
        match self {
            Self::Login(route) | Self::LoginPage(route) => Some(route),
            Self::Passthrough => None,
        }
    }
}

// === impl Routes ===

impl Routes {
    /// The routes of `[[login]]`, each path normalised and named once.
    /// Fails on a name that cannot be a metric label, or on two tables for
    /// one endpoint (the second would never match).
    pub fn new(logins: &[config::Login]) -> Result<Self, RouteError> {
        let mut routes = Self::default();
        for (index, config) in logins.iter().enumerate() {
            let route = LoginRoute::new(index, config);
            route.check_name()?;
            let path = route.path.to_ascii_lowercase();
            let repeated = routes.logins.iter().find(|r| {
                r.name == route.name
                    || r.path.eq_ignore_ascii_case(&path)
                    || r.matches_path(&route.path)
            });
            if let Some(other) = repeated {
                return Err(RouteError::Repeated {
                    index,
                    name: route.name,
                    other: other.name.clone(),
                });
            }
            routes.logins.push(route);
        }
        Ok(routes)
    }

    /// Lets `methods` (of [`BODILESS`]) carry a body: `server.allow_body_on`.
    pub fn allow_body_on(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.bodies_on.extend(methods);
        self
    }

    pub fn logins(&self) -> &[LoginRoute] {
        &self.logins
    }

    /// The route of a request: a login route if its normalised path and its
    /// method match one, its page if only the path does. The path is
    /// normalised here once; [`Routes::admit`] takes what this found.
    pub fn resolve<B>(&self, req: &Request<B>) -> Route<'_> {
        match self.login_path(req) {
            Some(route) if route.methods.contains(req.method()) => Route::Login(route),
            Some(route) => Route::LoginPage(route),
            None => Route::Passthrough,
        }
    }

    /// Refuses what no route may carry: a control character in the path, a
    /// body on a method that should have none and, on a login path, a body
    /// on another method or a credential field in the query. `route` is
    /// what [`Routes::resolve`] made of `req`.
    pub fn admit<B: Body>(&self, req: &Request<B>, route: Route<'_>) -> Result<(), RouteRefusal> {
        let raw = req.uri().path();
        if has_control(raw) || has_control(&normalize(raw)) {
            return Err(RouteRefusal::ControlInPath);
        }
        let login = route.path_of();
        if login.is_some() && req.headers().contains_key(http::header::UPGRADE) {
            return Err(RouteRefusal::UpgradeOnLogin);
        }
        route_query(login, req)?;
        if let Route::Login(_) = route {
            // Its body is inspected, and forwarded with a fresh length.
            return Ok(());
        }
        let method = req.method();
        if !has_body(req.body()) {
            return Ok(());
        }
        if BODILESS.contains(method) && !self.bodies_on.contains(method) {
            return Err(RouteRefusal::BodyNotAllowed {
                method: method.clone(),
            });
        }
        match login {
            Some(route) => Err(RouteRefusal::NotALoginMethod {
                method: method.clone(),
                allow: route.allow.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The login route whose path this is, whatever the method.
    fn login_path<B>(&self, req: &Request<B>) -> Option<&LoginRoute> {
        if self.logins.is_empty() {
            return None;
        }
        let path = normalize(req.uri().path());
        self.logins.iter().find(|r| r.matches_path(&path))
    }
}

fn route_query<B>(login: Option<&LoginRoute>, req: &Request<B>) -> Result<(), RouteRefusal> {
    login.map_or(Ok(()), |route| route.check_query(req.uri().query()))
}

/// Returns true if and only if the request has a body, or may have one: a
/// length above zero, or a stream not ended with its head.
fn has_body<B: Body>(body: &B) -> bool {
    !body.is_end_stream() && body.size_hint().exact() != Some(0)
}

/// Returns true if and only if `path` holds a control byte (raw, or once
/// decoded: `%00`, `%0A`, `%7F`).
fn has_control(path: &str) -> bool {
    path.bytes().any(|b| b.is_ascii_control())
}

// === impl LoginRoute ===

impl LoginRoute {
    fn new(index: usize, config: &config::Login) -> Self {
        Self {
            index,
            name: config
                .name
                .clone()
                .unwrap_or_else(|| derive_name(&config.path)),
            path: normalize(&config.path).into_owned(),
            case_sensitive: config.case_sensitive,
            match_suffix: config.match_suffix,
            match_subpaths: config.match_subpaths,
            methods: config.methods.iter().map(|m| m.0.clone()).collect(),
            allow: allow_header(&config.methods),
            format: config.format,
            username_field: config.username_field.clone(),
            password_field: config.password_field.clone(),
            max_body: usize::try_from(config.max_body.0).unwrap_or(usize::MAX),
            failure: FailureSigns::new(config),
            attempt_field: config.attempt_field.clone(),
            username_aliases: config.username_aliases.clone(),
        }
    }

    fn check_name(&self) -> Result<(), RouteError> {
        let label_safe = self
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if self.name.is_empty() || !label_safe || self.name == "passthrough" {
            return Err(RouteError::Name {
                index: self.index,
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Returns true if and only if the normalised path is this route's,
    /// allowing what routers strip or route alike: trailing dots and spaces
    /// (`/login.`, `/login%20`), with `match_suffix` a format suffix
    /// (`/login.json`), and with `match_subpaths` any path below it.
    fn matches_path(&self, normalized: &str) -> bool {
        let trimmed = normalized.trim_end_matches([' ', '.']);
        let Some(rest) = self.strip_path(trimmed) else {
            return false;
        };
        if self.match_subpaths && rest.starts_with('/') {
            return true;
        }
        match rest.strip_prefix('.') {
            None => rest.is_empty(),
            Some(suffix) => self.match_suffix && !suffix.contains('/'),
        }
    }

    /// What follows this route's path at the start of `path`.
    fn strip_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        let head = path.get(..self.path.len())?;
        let same = match self.case_sensitive {
            true => head == self.path,
            false => head.eq_ignore_ascii_case(&self.path),
        };
        same.then(|| &path[self.path.len()..])
    }

    /// Refuses a credential field name in the query string, on every method:
    /// many stacks merge query and body parameters, so a query credential
    /// would reach the shop unchecked. `;` separates pairs too, as some
    /// stacks split on it.
    fn check_query(&self, query: Option<&str>) -> Result<(), RouteRefusal> {
        let Some(query) = query else {
            return Ok(());
        };
        for pair in query.split(['&', ';']) {
            let name = pair.split('=').next().unwrap_or_default();
            let name = form_urlencoded::parse(name.as_bytes())
                .next()
                .map_or(Cow::Borrowed(""), |(name, _)| name);
            for (field, which) in [
                (&self.username_field, Field::Username),
                (&self.password_field, Field::Password),
            ] {
                let suspicious = name.contains("%u") || name.contains("%U");
                let matched = fieldname::compare(name.as_bytes(), field_name(field));
                if matched != NameMatch::Other || suspicious {
                    return Err(RouteRefusal::CredentialInQuery { field: which });
                }
            }
        }
        Ok(())
    }
}

/// The name a field has in a form or query: the last segment of a pointer.
pub fn field_name(field: &str) -> &str {
    field.rsplit('/').next().unwrap_or(field)
}

/// `["POST", "PUT"]` → `POST, PUT`.
fn allow_header(methods: &[config::MethodName]) -> HeaderValue {
    let names: Vec<&str> = methods.iter().map(|m| m.0.as_str()).collect();
    HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static("POST"))
}

/// `/api/v1/session` → `api_v1_session`: a label-safe name.
fn derive_name(path: &str) -> String {
    let name: String = path
        .trim_matches('/')
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect();
    match name.is_empty() {
        true => "root".into(),
        false => name,
    }
}

/// The path as a lenient router reads it. Borrowed when it is already plain.
fn normalize(path: &str) -> Cow<'_, str> {
    let plain = !path.contains(['%', ';', '\\', '.'])
        && !path.contains("//")
        && (path.len() <= 1 || !path.ends_with('/'));
    if plain {
        return Cow::Borrowed(path);
    }
    // Decode until stable (bounded): `%256C` is `%6C` to a router that
    // decodes twice, and `l` to one that decodes three times.
    let mut decoded = path.to_owned();
    for _ in 0..3 {
        if !decoded.contains('%') {
            break;
        }
        decoded = percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    Cow::Owned(format!("/{}", segments.join("/")))
}

#[cfg(test)]
mod tests;
