//! Simulated clients: one shared HTTP client to credgate's cleartext
//! listener (the simulator is the load balancer), and per-person (or
//! per-bot) `Browser`s that carry their address in `X-Forwarded-For`, a TLS
//! fingerprint header, and a cookie jar that keeps every cookie it was given.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::shop::{ACTOR_HEADER, SHOP_HEADER, STEP_UP_HEADER};

/// The fingerprint a trusted load balancer would compute (JA4), forwarded
/// as a header. Browsers share a few; a stuffing tool has its own.
pub const BROWSER_FINGERPRINTS: [&str; 3] = [
    "t13d1516h2_8daaf6152771_b0da82dd1658",
    "t13d1715h2_5b57614c22b0_3d5424432f57",
    "t13d2014h2_a09f3c656075_14788d8d241b",
];
pub const TOOL_FINGERPRINT: &str = "t13d311100_e8f1e7e78f70_d41ae481755e";
const FINGERPRINT_HEADER: &str = "x-ja4";

/// A pooled HTTP/1.1 client; cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build_http();
        Self { client }
    }

    /// A GET for the admin listener: status and body.
    pub async fn get_text(&self, url: &str) -> anyhow::Result<(u16, String)> {
        let req = Request::get(url).body(Full::default())?;
        let response = self.client.request(req).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Why credgate itself refused, as its answer tells: the JSON body's
/// message, and for a rate limit the `limit` it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Refusal {
    /// A rate limit (`[limits]`): ip, subnet, username, global, all.
    Limit(&'static str),
    /// `[attack] untrusted_budget`.
    UntrustedBudget,
    /// `[risk]` throttles (429) this level.
    RiskThrottle,
    /// `[risk]` blocks (403) this level.
    RiskBlock,
    /// A ban (403 with `Retry-After`).
    Ban,
    /// The deny list, or an answer this list does not know.
    Other,
}

impl Refusal {
    /// From a refusal's status and body.
    fn of(status: StatusCode, body: &[u8]) -> Self {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let message = json["error"].as_str().unwrap_or_default();
        let limit = match json["limit"].as_str() {
            Some("ip") => Some("ip"),
            Some("subnet") => Some("subnet"),
            Some("username") => Some("username"),
            Some("global") => Some("global"),
            Some("all") => Some("all"),
            Some(_) => Some("?"),
            None => None,
        };
        match (status, limit) {
            (_, Some(limit)) => Self::Limit(limit),
            _ if message.contains("new devices") => Self::UntrustedBudget,
            (StatusCode::TOO_MANY_REQUESTS, _) if message.contains("unusual") => Self::RiskThrottle,
            (StatusCode::FORBIDDEN, _) if message.contains("unusual") => Self::RiskBlock,
            (StatusCode::FORBIDDEN, _) if message.contains("suspicious") => Self::Ban,
            _ => Self::Other,
        }
    }

    pub fn label(self) -> String {
        match self {
            Self::Limit(limit) => format!("429 {limit} limit"),
            Self::UntrustedBudget => "429 untrusted budget".to_owned(),
            Self::RiskThrottle => "429 risk throttle".to_owned(),
            Self::RiskBlock => "403 risk block".to_owned(),
            Self::Ban => "403 ban".to_owned(),
            Self::Other => "other refusal".to_owned(),
        }
    }
}

/// What an answer meant to the person (or bot) who got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The shop opened a session.
    In,
    /// The shop said the password is wrong.
    WrongPassword,
    /// The shop asked for a step-up; the challenge token.
    StepUp(String),
    /// credgate refused (429, or 403 with `Retry-After`: a ban); how long
    /// it said to wait, if it said, and why (see [`Refusal`]).
    Refused {
        status: u16,
        retry_after: Option<Duration>,
        why: Refusal,
    },
    /// credgate blocked a leaked pair (403 without `Retry-After`).
    LeakedBlock,
    /// Anything else (an error of the simulation or of credgate).
    Other(u16),
}

/// One answer: its meaning, and whether the shop answered it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub outcome: Outcome,
    pub from_shop: bool,
}

/// One browser (or one bot's HTTP stack) at one address.
#[derive(Clone)]
pub struct Browser {
    http: Http,
    gate: SocketAddr,
    pub addr: IpAddr,
    pub fingerprint: &'static str,
    actor: &'static str,
    /// Cookie name → value, as the site set them (one site, one path).
    pub jar: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(
        http: &Http,
        gate: SocketAddr,
        addr: IpAddr,
        fingerprint: &'static str,
        actor: &'static str,
    ) -> Self {
        Self {
            http: http.clone(),
            gate,
            addr,
            fingerprint,
            actor,
            jar: BTreeMap::new(),
        }
    }

    /// The same browser (its cookies and fingerprint) on another network.
    pub fn moved_to(&self, addr: IpAddr) -> Self {
        Self {
            addr,
            ..self.clone()
        }
    }

    /// The same cookies under another actor tag and fingerprint (a bot
    /// replaying a browser's jar).
    pub fn acting_as(self, actor: &'static str, fingerprint: &'static str) -> Self {
        Self {
            actor,
            fingerprint,
            ..self
        }
    }

    pub async fn log_in(&mut self, username: &str, password: &str) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("username", username)
            .append_pair("password", password)
            .finish();
        self.post("/login", body).await
    }

    pub async fn pass_step_up(&mut self, challenge: &str) -> Reply {
        let body = format!("challenge={challenge}");
        self.post("/step-up", body).await
    }

    /// The shop's password-reset form (a pass-through route).
    pub async fn ask_reset(&mut self, username: &str) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("username", username)
            .finish();
        self.post("/password-reset", body).await
    }

    async fn post(&mut self, path: &str, body: String) -> Reply {
        let mut req = Request::post(format!("http://{}{path}", self.gate))
            .header("host", "shop.example")
            .header("x-forwarded-for", self.addr.to_string())
            .header("x-forwarded-proto", "https")
            .header("content-type", "application/x-www-form-urlencoded")
            .header(FINGERPRINT_HEADER, self.fingerprint)
            .header(ACTOR_HEADER, self.actor);
        if !self.jar.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        match self.http.client.request(req).await {
            Ok(response) => self.read(response).await,
            Err(_) => Reply {
                outcome: Outcome::Other(0),
                from_shop: false,
            },
        }
    }

    async fn read(&mut self, response: http::Response<hyper::body::Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        // Drain the body so that the connection returns to the pool.
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.keep_cookies(&parts.headers);
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let from_shop = header(SHOP_HEADER).is_some();
        let retry_after = header(http::header::RETRY_AFTER.as_str())
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs);
        let outcome = match (parts.status, from_shop) {
            (StatusCode::FOUND, true) => Outcome::In,
            (StatusCode::UNAUTHORIZED, true) => Outcome::WrongPassword,
            (StatusCode::OK, true) => match header(STEP_UP_HEADER) {
                Some(challenge) => Outcome::StepUp(challenge.to_owned()),
                None => Outcome::Other(200),
            },
            // The block page (HTML, or the operator's): not credgate's JSON.
            (StatusCode::FORBIDDEN, false)
                if retry_after.is_none()
                    && serde_json::from_slice::<serde_json::Value>(&body).is_err() =>
            {
                Outcome::LeakedBlock
            }
            (StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS, false) => Outcome::Refused {
                status: parts.status.as_u16(),
                retry_after,
                why: Refusal::of(parts.status, &body),
            },
            (status, _) => Outcome::Other(status.as_u16()),
        };
        Reply { outcome, from_shop }
    }

    /// Keeps every cookie the site set, from the shop or from credgate.
    fn keep_cookies(&mut self, headers: &http::HeaderMap) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.jar
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pairs.join("; ")
    }
}
