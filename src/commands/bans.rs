//! `credgate bans list|add|remove|lookup`: a running proxy's bans through
//! its admin API, with the admin token, like `cscli decisions`. The admin
//! URL and token file come from the flags, else from `--config`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

use crate::config::Config;

use super::{exit, usage_error};

/// The admin listener when neither `--admin-url` nor `--config` says.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9090";

/// How long one call of the admin API may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the admin API is and how to talk to it.
#[derive(Debug, Clone, Default)]
pub struct Api {
    pub config: Option<PathBuf>,
    pub admin_url: Option<Uri>,
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON answer rather than text.
    pub json: bool,
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    List,
    Add {
        target: String,
        duration: String,
        reason: Option<String>,
        by: Option<String>,
    },
    Remove {
        target: String,
    },
    Lookup {
        target: String,
    },
}

/// An answer of the admin API.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    text: String,
}

/// `credgate bans ...`: exit 0 done, 1 refused or not found (and `lookup`
/// of an address no ban covers), 64 for a bad command line or config.
pub fn bans(api: &Api, action: &Action) -> ExitCode {
    let (base, token_file) = match resolve(api) {
        Ok(resolved) => resolved,
        Err(e) => return usage_error(e),
    };
    let token = match read_token(&token_file) {
        Ok(token) => token,
        Err(e) => return usage_error(e),
    };
    let (method, path, body) = match action {
        Action::List => (Method::GET, "/admin/bans".to_owned(), None),
        Action::Add {
            target,
            duration,
            reason,
            by,
        } => {
            let body = serde_json::json!({
                "target": target, "duration": duration, "reason": reason, "by": by,
            });
            (Method::POST, "/admin/bans".to_owned(), Some(body))
        }
        Action::Remove { target } => (Method::DELETE, target_path(target), None),
        Action::Lookup { target } => (Method::GET, target_path(target), None),
    };
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(call(&base, &token, method, &path, body)));
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return exit(Err(e)),
    };
    match answer.status {
        StatusCode::UNAUTHORIZED => {
            return exit(Err(anyhow::anyhow!(
                "{base}: the admin API refused the token in {} (it must match the proxy's \
                 server.admin_token_file)",
                token_file.display()
            )))
        }
        StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
            return exit(Err(anyhow::anyhow!(
                "{base}: {} ({})",
                message(&answer),
                answer.status
            )))
        }
        _ => {}
    }
    if api.json {
        println!("{}", answer.text.trim_end());
        return match answer.status.is_success() && !(is_lookup(action) && no_bans(&answer)) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
    }
    print_text(action, &answer)
}

/// The base URL and token file, from the flags or the config file.
fn resolve(api: &Api) -> anyhow::Result<(Uri, PathBuf)> {
    let config = match &api.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    let base = match (&api.admin_url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => url_of(config.server.admin_listen)
            .parse()
            .context("server.admin_listen")?,
        (None, None) => Uri::from_static(DEFAULT_ADMIN_URL),
    };
    anyhow::ensure!(
        base.scheme_str() == Some("http") && base.host().is_some(),
        "--admin-url {base}: must be http://HOST:PORT (the admin listener is plain HTTP)"
    );
    let token_file = match (&api.token_file, &config) {
        (Some(file), _) => file.clone(),
        (None, Some(config)) => config.server.admin_token_file.clone().with_context(|| {
            format!(
                "{}: no server.admin_token_file, so the admin API is off; or pass --token-file",
                api.config.as_deref().unwrap_or(Path::new("")).display()
            )
        })?,
        (None, None) => anyhow::bail!("no admin token: pass --token-file FILE or --config FILE"),
    };
    Ok((base, token_file))
}

/// The admin listener's URL; one bound to every address is reached on
/// loopback.
fn url_of(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// The token, trimmed as the proxy trims it; never printed.
fn read_token(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the admin token", path.display()))?,
    );
    let token = Zeroizing::new(raw.trim().to_owned());
    anyhow::ensure!(
        !token.is_empty(),
        "{}: the admin token file is empty",
        path.display()
    );
    Ok(token)
}

/// `/admin/bans/TARGET`, the `/` of a CIDR escaped.
fn target_path(target: &str) -> String {
    use percent_encoding::{AsciiSet, CONTROLS};
    const SEGMENT: &AsciiSet = &CONTROLS.add(b'/').add(b'%').add(b' ').add(b'?').add(b'#');
    let escaped = percent_encoding::utf8_percent_encode(target.trim(), SEGMENT);
    format!("/admin/bans/{escaped}")
}

async fn call(
    base: &Uri,
    token: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<Answer> {
    let url: Uri = format!("{}{path}", base.to_string().trim_end_matches('/'))
        .parse()
        .with_context(|| format!("{base}: not a usable admin URL"))?;
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .context("cannot build the request")?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{base}: the admin API did not answer within {TIMEOUT:?}"))?
        .with_context(|| format!("{base}: cannot reach the admin API"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
    })
}

fn print_text(action: &Action, answer: &Answer) -> ExitCode {
    let body = &answer.body;
    match (action, answer.status) {
        (Action::List, StatusCode::OK) => {
            let bans = body.as_array().map_or(&[][..], Vec::as_slice);
            match bans.is_empty() {
                true => println!("no bans in force"),
                false => print_table(bans),
            }
            ExitCode::SUCCESS
        }
        (Action::Add { .. }, StatusCode::CREATED) => {
            let left = seconds(&body["expires_in_seconds"]);
            println!("banned {} for {left}", text(&body["target"]));
            ExitCode::SUCCESS
        }
        (Action::Remove { .. }, StatusCode::OK) => {
            println!("lifted the ban on {}", text(&body["unbanned"]));
            if let Some(still) = body["still_covered_by"].as_array() {
                eprintln!("warning: still banned by a network ban:");
                print_table(still);
            }
            ExitCode::SUCCESS
        }
        (Action::Remove { target }, StatusCode::CONFLICT) => {
            eprintln!("error: no ban on exactly {target}; it is covered by:");
            print_table(body["covered_by"].as_array().map_or(&[][..], Vec::as_slice));
            ExitCode::FAILURE
        }
        (Action::Lookup { target }, StatusCode::OK) if no_bans(answer) => {
            println!("{target} is not banned");
            ExitCode::FAILURE
        }
        (Action::Lookup { .. }, StatusCode::OK) => {
            print_table(body["bans"].as_array().map_or(&[][..], Vec::as_slice));
            ExitCode::SUCCESS
        }
        (_, status) => exit(Err(anyhow::anyhow!("{} ({status})", message(answer)))),
    }
}

/// One line per ban, aligned.
fn print_table(bans: &[serde_json::Value]) {
    let mut rows = vec![["TARGET", "ORIGIN", "REASON", "BY", "EXPIRES IN"].map(String::from)];
    for ban in bans {
        rows.push([
            text(&ban["target"]),
            text(&ban["origin"]),
            text(&ban["reason"]),
            text(&ban["by"]),
            seconds(&ban["expires_in_seconds"]),
        ]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..4).map(width).collect();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row[..4].iter().zip(&widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&row[4]);
        println!("{line}");
    }
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn seconds(value: &serde_json::Value) -> String {
    let secs = value.as_u64().unwrap_or(0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn message(answer: &Answer) -> String {
    match answer.body["error"].as_str() {
        Some(error) => error.to_owned(),
        None => answer.text.trim().chars().take(200).collect(),
    }
}

fn is_lookup(action: &Action) -> bool {
    matches!(action, Action::Lookup { .. })
}

fn no_bans(answer: &Answer) -> bool {
    answer.body["bans"].as_array().is_some_and(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_listener_on_every_address_is_reached_on_loopback() {
        assert_eq!(
            url_of("0.0.0.0:9090".parse().unwrap()),
            "http://127.0.0.1:9090"
        );
        assert_eq!(url_of("[::]:9090".parse().unwrap()), "http://[::1]:9090");
        assert_eq!(
            url_of("10.0.0.5:9091".parse().unwrap()),
            "http://10.0.0.5:9091"
        );
    }

    #[test]
    fn a_cidr_is_one_path_segment() {
        assert_eq!(
            target_path("198.51.100.0/24"),
            "/admin/bans/198.51.100.0%2F24"
        );
    }
}
