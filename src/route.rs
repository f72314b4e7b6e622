//! Which requests are login attempts?
//!
//! Matching must not be bypassable. The shop's router may well treat
//! `/login/`, `//login`, `/Login`, `/login;jsessionid=1`, `/%6Cogin` or
//! `/a/../login` as its login page; if credgate compared raw paths, each of
//! those would carry credentials past every check. So the path is normalised
//! the way a lenient router would read it (percent-decoding, collapsed and
//! dot segments, matrix parameters dropped, backslashes as slashes, optional
//! trailing slash), and a path that normalises to a login route is one.
//! Over-matching is the safe error: a request wrongly taken for a login is
//! inspected; a login wrongly taken for something else is not.

use std::borrow::Cow;

use http::{Method, Request};
use percent_encoding::percent_decode_str;

use crate::config::{self, BodyFormat};
use crate::outcome::FailureSigns;

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    Login(&'a LoginRoute),
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
    methods: Vec<Method>,
    pub format: BodyFormat,
    /// A form field name, or a JSON pointer such as `/user/email`.
    pub username_field: String,
    pub password_field: String,
    pub max_body: usize,
    /// How the shop says the login failed.
    pub failure: FailureSigns,
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

/// The login routes of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    logins: Vec<LoginRoute>,
}

impl<'a> Route<'a> {
    /// The login route, if this is one.
    pub fn login(self) -> Option<&'a LoginRoute> {
        match self {
            Self::Login(route) => Some(route),
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
            let repeated = routes
                .logins
                .iter()
                .find(|r| r.name == route.name || r.path.eq_ignore_ascii_case(&path));
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

    pub fn logins(&self) -> &[LoginRoute] {
        &self.logins
    }

    /// The route of a request: a login route if its normalised path and its
    /// method match one.
    pub fn resolve<B>(&self, req: &Request<B>) -> Route<'_> {
        if self.logins.is_empty() {
            return Route::Passthrough;
        }
        let path = normalize(req.uri().path());
        self.logins
            .iter()
            .find(|r| r.matches_path(&path) && r.methods.contains(req.method()))
            .map_or(Route::Passthrough, Route::Login)
    }
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
            methods: config.methods.iter().map(|m| m.0.clone()).collect(),
            format: config.format,
            username_field: config.username_field.clone(),
            password_field: config.password_field.clone(),
            max_body: usize::try_from(config.max_body.0).unwrap_or(usize::MAX),
            failure: FailureSigns::new(config),
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

    fn matches_path(&self, normalized: &str) -> bool {
        match self.case_sensitive {
            true => normalized == self.path,
            false => normalized.eq_ignore_ascii_case(&self.path),
        }
    }
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
mod tests {
    use super::*;

    fn routes(case_sensitive: bool) -> Routes {
        let tables = format!(
            r#"
            [[login]]
            path = "/login"
            case_sensitive = {case_sensitive}
            [[login]]
            name = "api"
            path = "/api/v1/session"
            methods = ["POST", "PUT"]
            "#
        );
        Routes::new(&config::for_tests(&tables).login).unwrap()
    }

    fn route_error(tables: &str) -> String {
        Routes::new(&config::for_tests(tables).login)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn names_must_be_labels() {
        let error = route_error("[[login]]\npath = \"/login\"\nname = \"Log in\"");
        assert!(error.starts_with("key `login[0].name`"), "{error}");
        let error = route_error("[[login]]\npath = \"/login\"\nname = \"passthrough\"");
        assert!(error.contains("not \"passthrough\""), "{error}");
    }

    #[test]
    fn a_repeated_endpoint_is_refused() {
        // `/Login/` normalises to the first route's path.
        let tables =
            "[[login]]\npath = \"/login\"\n[[login]]\nname = \"other\"\npath = \"/Login/\"";
        let error = route_error(tables);
        assert!(error.starts_with("key `login[1].path`"), "{error}");
        assert!(
            error.contains("\"other\" repeats the route \"login\""),
            "{error}"
        );
        let tables =
            "[[login]]\npath = \"/a\"\nname = \"x\"\n[[login]]\nname = \"x\"\npath = \"/b\"";
        assert!(route_error(tables).contains("repeats"));
    }

    fn route_name(routes: &Routes, method: &str, uri: &str) -> Option<String> {
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        match routes.resolve(&req) {
            Route::Login(r) => Some(r.name.clone()),
            Route::Passthrough => None,
        }
    }

    #[test]
    fn normalises_like_a_lenient_router() {
        let cases = [
            ("/login", "/login"),
            ("/", "/"),
            ("/login/", "/login"),
            ("//login", "/login"),
            ("/login;jsessionid=1", "/login"),
            ("/%6Cogin", "/login"),
            ("/%256Cogin", "/login"),
            ("/a/../login", "/login"),
            ("/./login/.", "/login"),
            ("\\login", "/login"),
            ("/api//v1/./session/", "/api/v1/session"),
            ("/../../login", "/login"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), want, "{raw}");
        }
        assert!(matches!(normalize("/plain/path"), Cow::Borrowed(_)));
    }

    #[test]
    fn bypass_forms_still_match_the_login_route() {
        let r = routes(false);
        for uri in [
            "/login",
            "/login/",
            "//login",
            "/Login",
            "/LOGIN",
            "/login;jsessionid=1",
            "/%6Cogin",
            "/login?x=1",
            "/x/../login",
        ] {
            assert_eq!(
                route_name(&r, "POST", uri).as_deref(),
                Some("login"),
                "{uri}"
            );
        }
    }

    #[test]
    fn other_paths_and_methods_pass_through() {
        let r = routes(false);
        assert_eq!(route_name(&r, "GET", "/login"), None);
        assert_eq!(route_name(&r, "POST", "/login2"), None);
        assert_eq!(route_name(&r, "POST", "/logins"), None);
        assert_eq!(route_name(&r, "POST", "/"), None);
        assert_eq!(
            route_name(&r, "PUT", "/api/v1/session").as_deref(),
            Some("api")
        );
        assert_eq!(
            route_name(&r, "POST", "/API/V1/SESSION/").as_deref(),
            Some("api")
        );
    }

    #[test]
    fn case_sensitive_routes_only_match_their_case() {
        let r = routes(true);
        assert_eq!(route_name(&r, "POST", "/login").as_deref(), Some("login"));
        assert_eq!(route_name(&r, "POST", "/Login"), None);
    }

    #[test]
    fn names_are_derived_from_paths() {
        assert_eq!(derive_name("/login"), "login");
        assert_eq!(derive_name("/api/v1/session"), "api_v1_session");
        assert_eq!(derive_name("/"), "root");
    }
}
