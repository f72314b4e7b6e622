use super::*;
use bytes::Bytes;
use http_body_util::{Empty, Full};

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
    let tables = "[[login]]\npath = \"/login\"\n[[login]]\nname = \"other\"\npath = \"/Login/\"";
    let error = route_error(tables);
    assert!(error.starts_with("key `login[1].path`"), "{error}");
    assert!(
        error.contains("\"other\" repeats the route \"login\""),
        "{error}"
    );
    let tables = "[[login]]\npath = \"/a\"\nname = \"x\"\n[[login]]\nname = \"x\"\npath = \"/b\"";
    assert!(route_error(tables).contains("repeats"));
}

fn route_name(routes: &Routes, method: &str, uri: &str) -> Option<String> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Empty::<Bytes>::new())
        .unwrap();
    match routes.resolve(&req) {
        Route::Login(r) => Some(r.name.clone()),
        Route::LoginPage(_) | Route::Passthrough => None,
    }
}

fn refusal(routes: &Routes, method: &str, uri: &str, body: &str) -> Option<RouteRefusal> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    routes.admit(&req, routes.resolve(&req)).err()
}

#[test]
fn suffixes_trailing_dots_and_spaces_match_the_login_route() {
    let r = routes(false);
    for uri in [
        "/login.json",
        "/login.xml",
        "/Login.JSON",
        "/login.",
        "/login%20",
        "/login%2e",
        "/login.json/",
    ] {
        assert_eq!(
            route_name(&r, "POST", uri).as_deref(),
            Some("login"),
            "{uri}"
        );
    }
    assert_eq!(route_name(&r, "POST", "/login.json/x"), None);
    assert_eq!(route_name(&r, "POST", "/loginx.json"), None);
    let tables = "[[login]]\npath = \"/login\"\nmatch_suffix = false";
    let strict = Routes::new(&config::for_tests(tables).login).unwrap();
    assert_eq!(route_name(&strict, "POST", "/login.json"), None);
    assert_eq!(
        route_name(&strict, "POST", "/login.").as_deref(),
        Some("login")
    );
}

#[test]
fn with_match_subpaths_the_paths_below_are_the_route() {
    let tables = "[[login]]\npreset = \"magento2\"";
    let r = Routes::new(&config::for_tests(tables).login).unwrap();
    for uri in [
        "/customer/account/loginPost",
        "/customer/account/loginpost/",
        "/customer/account/loginPost/referer/aHR0cHM6Ly9zaG9w/",
        "/customer/account/x/../loginPost//referer/a",
    ] {
        let name = route_name(&r, "POST", uri);
        assert_eq!(name.as_deref(), Some("customer_account_loginpost"), "{uri}");
    }
    assert_eq!(route_name(&r, "POST", "/customer/account/loginPostx"), None);
    assert_eq!(route_name(&r, "POST", "/customer/account/login"), None);
    let r = routes(false);
    assert_eq!(route_name(&r, "POST", "/login/x"), None);
}

#[test]
fn control_bytes_in_the_path_are_refused_everywhere() {
    let r = routes(false);
    for uri in ["/login%00", "/login%00.html", "/x%0a", "/a%7Fb", "/%250a"] {
        assert_eq!(
            refusal(&r, "GET", uri, ""),
            Some(RouteRefusal::ControlInPath),
            "{uri}"
        );
    }
}

#[test]
fn bodies_on_bodiless_methods_are_refused_unless_allowed() {
    let r = routes(false);
    for method in ["GET", "HEAD", "OPTIONS", "DELETE", "TRACE"] {
        assert!(
            matches!(
                refusal(&r, method, "/any", "x"),
                Some(RouteRefusal::BodyNotAllowed { .. })
            ),
            "{method}"
        );
        assert_eq!(refusal(&r, method, "/any", ""), None);
    }
    assert_eq!(refusal(&r, "PATCH", "/any", "x"), None);
    let allowing = routes(false).allow_body_on([Method::DELETE]);
    assert_eq!(refusal(&allowing, "DELETE", "/any", "x"), None);
}

#[test]
fn login_paths_are_covered_on_every_method() {
    let r = routes(false);
    // The page still renders.
    assert_eq!(refusal(&r, "GET", "/login", ""), None);
    assert_eq!(route_name(&r, "GET", "/login?next=/cart"), None);
    let refused = refusal(&r, "PATCH", "/login", "username=a&password=b");
    assert!(
        matches!(refused, Some(RouteRefusal::NotALoginMethod { ref allow, .. }) if allow == "POST"),
        "{refused:?}"
    );
    for uri in [
        "/login?password=x",
        "/login?PassWord=x",
        "/login?pa%C5%BF%C5%BFword=x",
        "/login?a=1;password=x",
        "/login.json?username=x",
    ] {
        for method in ["GET", "POST", "HEAD"] {
            assert!(
                matches!(
                    refusal(&r, method, uri, ""),
                    Some(RouteRefusal::CredentialInQuery { .. })
                ),
                "{method} {uri}"
            );
        }
    }
    // Other paths may carry any query.
    assert_eq!(refusal(&r, "GET", "/search?password=x", ""), None);
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
    assert_eq!(route_name(&r, "POST", "/login-x.json"), None);
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
