//! The ways around the login check, tried as an attacker would: a fresh
//! leaked pair that must never reach the shop, sent every way a common shop
//! stack would still accept it.

use std::time::Duration;

use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use credgate::leaked::FilterKind;

use crate::support::client::{empty, full, Answer, Body};
use crate::support::*;

const FORM: &str = "application/x-www-form-urlencoded";
/// In the breach: it must never reach the shop.
const LEAKED_FORM: &str = "username=bob%40example.com&password=correct+horse+battery+staple";
const LEAKED_JSON: &str =
    r#"{"user":{"username":"bob@example.com","password":"correct horse battery staple"}}"#;

/// credgate with a form login on `/login` and a JSON one on `/api/login`
/// (`/user/username`, `/user/password`), blocking the breach's pairs.
struct Bypass {
    cert: TestCert,
    shop: credgate::demo::Shop,
    proxy: RunningProxy,
}

impl Bypass {
    async fn start(server: &str, login_extra: &str) -> Self {
        // These tests replay one leaked pair from one address on purpose:
        // neither suspicion nor the per-client limits may stop them first.
        let tables = "[suspicion]\nenabled = false\n[limits]\nip = \"off\"\nusername = \"off\"";
        Self::start_with(server, login_extra, tables).await
    }

    /// With `tables` (`[suspicion]`, `[limits]`; bare keys go to
    /// `[leaked]`) instead of suspicion off.
    async fn start_with(server: &str, login_extra: &str, tables: &str) -> Self {
        let cert = TestCert::generate();
        let shop = start_shop().await;
        let pairs = build_filter(
            cert.dir.path(),
            "pairs.cgf",
            FilterKind::Pairs,
            &["bob@example.com:correct horse battery staple"],
        );
        let logins = format!(
            r#"
[[login]]
path = "/login"
{login_extra}

[[login]]
path = "/api/login"
format = "json"
username_field = "/user/username"
password_field = "/user/password"

[leaked]
pairs_filter = "{}"
{tables}
"#,
            pairs.display()
        );
        let toml = format!(
            "{}\n{logins}\n",
            config_toml(&cert, shop.addr(), server, "")
        );
        let proxy = start_proxy(&toml).await;
        Self { cert, shop, proxy }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        TestClient::new(&self.cert.der, Version::Http1)
            .send(req)
            .await
    }

    async fn send_h2(&self, req: Request<Body>) -> Answer {
        TestClient::new(&self.cert.der, Version::Http2)
            .send(req)
            .await
    }

    fn request(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(self.proxy.url(path))
    }

    /// Writes `raw` on a fresh HTTP/1.1 connection; returns all it gets
    /// until the proxy closes or goes quiet.
    async fn raw(&self, raw: &[u8]) -> String {
        let mut tls = raw_tls(self.proxy.addrs.proxy, &self.cert.der, &[b"http/1.1"]).await;
        tls.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(2), tls.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn refusals(&self, reason: &str) -> f64 {
        let metrics = scrape(self.proxy.addrs.admin).await;
        sample(&metrics, "credgate_refusals_total", &[("reason", reason)])
    }
}

fn form(req: http::request::Builder, body: &'static str) -> Request<Body> {
    req.header("content-type", FORM).body(full(body)).unwrap()
}

#[tokio::test]
async fn every_method_on_a_login_path_is_covered() {
    let b = Bypass::start("", "").await;
    // The login page still renders.
    let page = b
        .send(b.request("GET", "/login").body(empty()).unwrap())
        .await;
    assert_ne!(page.status, StatusCode::BAD_REQUEST);
    assert_ne!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b.shop.requests(), 1, "the page reached the shop");

    for method in ["PUT", "PATCH", "DELETE", "GET", "OPTIONS"] {
        let answer = b.send(form(b.request(method, "/login"), LEAKED_FORM)).await;
        let want = match method {
            "PUT" | "PATCH" => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        };
        assert_eq!(answer.status, want, "{method}: {}", answer.body);
        if want == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(answer.headers["allow"], "POST", "{method}");
        }
    }
    let query = "/login?username=bob%40example.com&password=correct+horse+battery+staple";
    for method in ["GET", "HEAD", "DELETE", "POST", "PUT"] {
        let answer = b
            .send(b.request(method, query).body(empty()).unwrap())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method} {query}");
    }
    let answer = b
        .send(
            b.request("GET", "/login.json?PassWord=x")
                .body(empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        b.shop.requests(),
        1,
        "nothing but the page reached the shop"
    );
    assert_eq!(b.refusals("login_method").await, 2.0);
    assert_eq!(b.refusals("credential_in_query").await, 6.0);
    assert_eq!(b.refusals("body_not_allowed").await, 3.0);
}

#[tokio::test]
async fn an_operator_listed_method_is_inspected() {
    let b = Bypass::start("", "methods = [\"POST\", \"PUT\"]").await;
    let answer = b.send(form(b.request("PUT", "/login"), LEAKED_FORM)).await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "the leaked pair is blocked"
    );
    let clean = "username=alice%40example.com&password=wonderland-42";
    let answer = b.send(form(b.request("PUT", "/login"), clean)).await;
    assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b.shop.requests(), 1);
}

#[tokio::test]
async fn path_suffixes_and_trailing_bytes_still_match_the_login() {
    let b = Bypass::start("", "").await;
    for path in [
        "/login.json",
        "/login.xml",
        "/Login.JSON",
        "/login.",
        "/login%20",
        "/login%2E",
        "/login.json;jsessionid=1",
    ] {
        let answer = b.send(form(b.request("POST", path), LEAKED_FORM)).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
    }
    for path in [
        "/login%00",
        "/login%00.json",
        "/x%0d%0a",
        "/a%7f",
        "/login%2500",
    ] {
        for method in ["GET", "POST"] {
            let answer = b.send(form(b.request(method, path), "")).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method} {path}");
        }
    }
    assert_eq!(b.shop.requests(), 0);
    assert_eq!(b.refusals("leaked").await, 7.0);
    assert_eq!(b.refusals("path_control").await, 10.0);

    // `match_suffix = false`: `/login.json` is another page.
    let strict = Bypass::start("", "match_suffix = false").await;
    let answer = strict
        .send(form(strict.request("POST", "/login.json"), "x=1"))
        .await;
    assert_ne!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(strict.shop.requests(), 1);
}

#[tokio::test]
async fn bodies_on_get_head_options_delete_and_trace_are_refused() {
    let b = Bypass::start("", "").await;
    for method in ["GET", "HEAD", "OPTIONS", "DELETE", "TRACE"] {
        let answer = b
            .send(b.request(method, "/anything").body(full("x=1")).unwrap())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method}");
    }
    let answer = b
        .send_h2(b.request("GET", "/anything").body(full("x=1")).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "over HTTP/2");
    // The smuggling this prevents: a GET whose body is a second request.
    let smuggled = format!(
        "POST /login HTTP/1.1\r\nHost: shop.test\r\ncontent-type: {FORM}\r\ncontent-length: {}\r\n\r\n{LEAKED_FORM}",
        LEAKED_FORM.len()
    );
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let answer = b.raw(raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(b.shop.requests(), 0);
    assert_eq!(b.refusals("body_not_allowed").await, 7.0);

    let allowing = Bypass::start("allow_body_on = [\"DELETE\"]", "").await;
    let answer = allowing
        .send(
            allowing
                .request("DELETE", "/anything")
                .body(full("x"))
                .unwrap(),
        )
        .await;
    assert_ne!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(allowing.shop.requests(), 1);
}

#[tokio::test]
async fn one_content_type_encoding_and_length_on_a_login() {
    let b = Bypass::start("", "").await;
    // The first type would decide our parse, the shop might read the last.
    let answer = b
        .send(
            b.request("POST", "/api/login")
                .header("content-type", "application/json")
                .header("content-type", FORM)
                .body(full(LEAKED_JSON))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    let answer = b
        .send(
            b.request("POST", "/login")
                .header("content-type", FORM)
                .header("content-encoding", "identity")
                .header("content-encoding", "identity")
                .body(full(LEAKED_FORM))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    // Two different lengths: hyper refuses them before we see them (two
    // equal ones it folds into one, which is what the shop then gets).
    let raw = format!(
        "POST /login HTTP/1.1\r\nHost: shop.test\r\ncontent-type: {FORM}\r\n\
         content-length: {n}\r\ncontent-length: 3\r\n\r\n{LEAKED_FORM}",
        n = LEAKED_FORM.len()
    );
    let answer = b.raw(raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // A list in one field is as ambiguous as two fields.
    let answer = b
        .send(
            b.request("POST", "/login")
                .header("content-type", format!("{FORM}, application/json"))
                .body(full(LEAKED_FORM))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(b.shop.requests(), 0);
    assert_eq!(b.refusals("repeated_header").await, 3.0);
}

#[tokio::test]
async fn field_names_a_shop_would_fold_together_are_refused() {
    let b = Bypass::start("", "").await;
    let forms = [
        // U+017F LATIN SMALL LETTER LONG S folds to `s`.
        "username=bob%40example.com&pa%C5%BF%C5%BFword=correct+horse+battery+staple&password=x",
        "username=bob%40example.com&password=x&PASSWORD=correct+horse+battery+staple",
        "username=bob%40example.com&%u0070assword=correct+horse+battery+staple&password=x",
        "username=bob%40example.com&password=x;password=correct+horse+battery+staple",
        "username=alice%40example.com&password=x&password=correct+horse+battery+staple",
    ];
    for body in forms {
        let answer = b.send(form(b.request("POST", "/login"), body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let jsons = [
        r#"{"user":{"username":"alice@example.com","password":"x"},"User":{"username":"bob@example.com","password":"correct horse battery staple"}}"#,
        r#"{"user":{"username":"bob@example.com","password":"x","pa\u017f\u017fword":"correct horse battery staple"}}"#,
        r#"{"user":{"\u212aey":1,"username":"bob@example.com","password":"x","Username":"y"}}"#,
    ];
    for body in jsons {
        let answer = b
            .send(
                b.request("POST", "/api/login")
                    .header("content-type", "application/json")
                    .body(full(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(b.shop.requests(), 0);
    assert_eq!(b.refusals("field_variant").await, 5.0);
    assert_eq!(b.refusals("form_syntax").await, 2.0);
    assert_eq!(b.refusals("duplicate_field").await, 1.0);
}

/// What the shop's `/headers` saw, sent from `from` with `headers`.
async fn seen_headers(
    b: &Bypass,
    version: Version,
    headers: &[(&str, &[u8])],
) -> serde_json::Value {
    let mut req = b.request("GET", "/headers");
    for (name, value) in headers {
        req = req.header(*name, http::HeaderValue::from_bytes(value).unwrap());
    }
    let answer = TestClient::new(&b.cert.der, version)
        .send(req.body(empty()).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()
}

#[tokio::test]
async fn client_address_headers_of_untrusted_peers_are_removed() {
    let b = Bypass::start("", "").await;
    let forged: &[(&str, &[u8])] = &[
        ("x-real-ip", b"6.6.6.6"),
        ("true-client-ip", b"6.6.6.6"),
        ("cf-connecting-ip", b"6.6.6.6"),
        ("x-client-ip", b"6.6.6.6"),
        ("x-cluster-client-ip", b"6.6.6.6"),
        ("fastly-client-ip", b"6.6.6.6"),
        ("client-ip", b"6.6.6.6"),
        ("x-forwarded-host", b"evil.test"),
        ("x-forwarded-port", b"1"),
        ("x-original-forwarded-for", b"6.6.6.6"),
        ("x_forwarded_for", b"6.6.6.6"),
        ("x_real_ip", b"6.6.6.6"),
        ("x-kept", b"yes"),
    ];
    let seen = seen_headers(&b, Version::Http1, forged).await;
    for (name, _) in &forged[..forged.len() - 1] {
        assert!(seen.get(*name).is_none(), "{name} reached the shop: {seen}");
    }
    assert_eq!(seen["x-kept"][0], "yes");
    assert_eq!(seen["x-forwarded-for"][0], "127.0.0.1");

    // From a trusted proxy they pass; the list is the operator's.
    let trusting = Bypass::start("trusted_proxies = [\"127.0.0.0/8\"]", "").await;
    let seen = seen_headers(&trusting, Version::Http1, forged).await;
    assert_eq!(seen["x-real-ip"][0], "6.6.6.6");
    assert_eq!(seen["x-forwarded-host"][0], "evil.test");
    let custom = Bypass::start("strip_client_headers = [\"x-kept\"]", "").await;
    let seen = seen_headers(&custom, Version::Http1, forged).await;
    assert!(seen.get("x-kept").is_none(), "{seen}");
    assert_eq!(seen["x-real-ip"][0], "6.6.6.6");
}

#[tokio::test]
async fn a_non_ascii_forwarded_entry_never_hides_the_client() {
    // The load balancer's network is allowlisted: if the client became the
    // load balancer, it would be unlimited.
    let tables = "[suspicion]\nenabled = false\nallowlist = [\"127.0.0.0/8\"]\n\
                  [limits]\nip = { rate = \"1/min\", burst = 1 }";
    let b = Bypass::start_with("trusted_proxies = [\"127.0.0.0/8\"]", "", tables).await;
    let chain: &[u8] = b"\xe9vil, 198.51.100.7";
    // A failed login: the per-client limits are charged by failures.
    let clean = "username=alice%40example.com&password=not-the-password";
    let login = || {
        b.request("POST", "/login")
            .header(
                "x-forwarded-for",
                http::HeaderValue::from_bytes(chain).unwrap(),
            )
            .header("content-type", FORM)
            .body(full(clean))
            .unwrap()
    };
    assert_ne!(b.send(login()).await.status, StatusCode::TOO_MANY_REQUESTS);
    let second = b.send(login()).await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.body
    );
    assert_eq!(b.refusals("throttled").await, 1.0);

    // The chain is extended without losing its bytes.
    let seen = seen_headers(&b, Version::Http1, &[("x-forwarded-for", chain)]).await;
    assert_eq!(
        seen["x-forwarded-for"][0], "\u{fffd}vil, 198.51.100.7, 127.0.0.1",
        "the shop's lossy view of the bytes"
    );
}

#[tokio::test]
async fn http2_cookie_fields_are_joined_for_the_shop() {
    let b = Bypass::start("", "").await;
    let cookies: &[(&str, &[u8])] = &[("cookie", b"session=abc"), ("cookie", b"cart=42")];
    let seen = seen_headers(&b, Version::Http2, cookies).await;
    assert_eq!(
        seen["cookie"],
        serde_json::json!(["session=abc; cart=42"]),
        "{seen}"
    );
    let seen = seen_headers(&b, Version::Http1, &[("cookie", b"session=abc")]).await;
    assert_eq!(seen["cookie"], serde_json::json!(["session=abc"]));
}

/// `curl --http2` with a body of `size` bytes: the status it printed and
/// whether it exited cleanly.
fn curl_h2(b: &Bypass, path: &str, size: usize) -> (String, std::process::Output) {
    let body = b.cert.dir.path().join("body.txt");
    std::fs::write(&body, "x".repeat(size)).unwrap();
    let output = std::process::Command::new("curl")
        .args(["--http2", "--silent", "--show-error", "--max-time", "20"])
        .arg("--cacert")
        .arg(b.cert.cert_path())
        .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .args(["-H", &format!("content-type: {FORM}")])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(b.proxy.url(path))
        .output()
        .unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_refusals_before_the_body_arrive_with_curl() {
    let b = Bypass::start("", "max_body = \"1KiB\"").await;
    // 413 on Content-Length: refused unread.
    let (printed, output) = tokio::task::block_in_place(|| curl_h2(&b, "/login", 256 * 1024));
    assert_eq!(
        printed,
        "2 413",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let denied = Bypass::start_with(
        "",
        "",
        "[suspicion]\nenabled = false\ndenylist = [\"127.0.0.0/8\"]",
    )
    .await;
    let (printed, output) = tokio::task::block_in_place(|| curl_h2(&denied, "/login", 256 * 1024));
    assert_eq!(
        printed,
        "2 403",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(denied.shop.requests(), 0);
}

#[tokio::test]
async fn http2_refusals_arrive_before_a_late_body() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let b = Bypass::start_with(
        "",
        "",
        "[suspicion]\nenabled = false\ndenylist = [\"127.0.0.0/8\"]",
    )
    .await;
    let mut curl = Command::new("curl")
        .args(["--http2", "--silent", "--show-error", "--max-time", "20"])
        .arg("--cacert")
        .arg(b.cert.cert_path())
        .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .args(["-H", &format!("content-type: {FORM}")])
        // Streamed from stdin as it comes, not read whole first.
        .args(["-X", "POST", "-T", "-"])
        .arg(b.proxy.url("/login"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The refusal is decided before any of the body is sent...
    let mut refused = false;
    for _ in 0..500 {
        if b.refusals("denied").await == 1.0 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "no refusal before the body");
    // ...and the body, sent late, does not turn it into a stream error.
    let mut stdin = curl.stdin.take().unwrap();
    // curl may already have its answer and be gone: a broken pipe is a
    // body too late to matter, which is what is tested.
    match stdin.write_all(LEAKED_FORM.repeat(100).as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    drop(stdin);
    let output = tokio::task::spawn_blocking(move || curl.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "2 403", "{stderr}");
    assert!(output.status.success(), "{stderr}");
    assert_eq!(b.shop.requests(), 0);
}

/// A body the JSON route cannot parse: forwarded under `on_unparsed`.
fn unparsed(b: &Bypass) -> Request<Body> {
    b.request("POST", "/api/login")
        .header("content-type", "application/json")
        .body(full(
            r#"{"user": {"username": "bob@example.com", "password": "#,
        ))
        .unwrap()
}

#[tokio::test]
async fn unparsed_logins_still_count_against_limits_and_suspicion() {
    let tables = "on_unparsed = \"forward\"\n[suspicion]\nenabled = false\n\
                  [limits]\nip = { rate = \"1/min\", burst = 1 }";
    let b = Bypass::start_with("", "", tables).await;
    let first = b.send(unparsed(&b)).await;
    assert_ne!(
        first.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        first.body
    );
    assert_eq!(b.shop.requests(), 1, "the unparsed login was forwarded");
    let second = b.send(unparsed(&b)).await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.body
    );
    assert_eq!(b.shop.requests(), 1);

    // Not known to succeed: a failure, and failures get a client banned.
    let tables = "on_unparsed = \"forward\"\n[suspicion]\nmin_attempts = 2\nfailure_ratio = 0.5";
    let b = Bypass::start_with("", "", tables).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(b.send(unparsed(&b)).await.status);
    }
    assert!(
        statuses.contains(&StatusCode::FORBIDDEN),
        "never banned: {statuses:?}"
    );
    assert!(b.refusals("banned").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_cannot_hurt_the_process() {
    use crate::support::binary::Process;
    use crate::support::client::admin_post;
    use std::os::unix::fs::PermissionsExt as _;
    let cert = TestCert::generate();
    let shop = start_shop().await;
    let server = trusting_server_with_admin(&cert);
    let token_file = cert.dir.path().join("admin.token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = cert.dir.path().join("credgate.toml");
    std::fs::write(&config, config_toml(&cert, shop.addr(), &server, "")).unwrap();
    let proxy = Process::serve(&config);
    assert!(
        proxy
            .logs()
            .contains("admin token file is readable by group or others"),
        "{}",
        proxy.logs()
    );

    let bans = format!("http://{}/admin/bans", proxy.admin);
    for huge in [
        r#"{"target": "203.0.113.7", "duration": "500000000years"}"#,
        r#"{"target": "203.0.113.7", "duration": "2y"}"#,
    ] {
        assert_eq!(
            admin_post(&bans, huge, ADMIN_TOKEN).await,
            StatusCode::BAD_REQUEST
        );
    }
    let year = r#"{"target": "203.0.113.8", "duration": "365d"}"#;
    assert_eq!(
        admin_post(&bans, year, ADMIN_TOKEN).await,
        StatusCode::CREATED
    );
    let (status, listed) = get(&bans.replace("/admin/bans", "/healthz")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(!proxy.logs().contains("panicked"), "{}", proxy.logs());
    // The ban line has one `target` key, the event's: a JSON object with two
    // is read differently by every log shipper.
    let logs = proxy.logs();
    let ban = logs
        .lines()
        .find(|l| l.contains("banned by an operator"))
        .unwrap_or_else(|| panic!("no ban line in {logs}"));
    assert_eq!(ban.matches("\"target\"").count(), 1, "{ban}");
    assert!(ban.contains("\"banned\":\"203.0.113.8/32\""), "{ban}");
    drop(proxy);

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let quiet = Process::serve(&config);
    assert!(!quiet.logs().contains("readable by group or others"));
}
