//! The scripted shop behind credgate: accounts, a form login that answers
//! `302` + session cookie or `401`, a step-up challenge when credgate
//! forwards `Credgate-Risk: high` (or `medium`, by flag), and a leaky
//! password-reset form that tells whether an account exists (what a
//! username-first attacker probes).
//!
//! It counts every login it receives by the `x-sim-actor` tag the simulated
//! clients send, so that "attempts reaching the shop" is measured where the
//! attempts land, not inferred from what the client saw.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Every shop response carries it, so a client knows the shop answered
/// (and not credgate).
pub const SHOP_HEADER: &str = "x-sim-shop";
/// The step-up challenge of a `200` answer to a right password.
pub const STEP_UP_HEADER: &str = "x-sim-step-up";
/// Who sent a request: `customer`, `attack-known`... (counted, never judged).
pub const ACTOR_HEADER: &str = "x-sim-actor";
const RISK_HEADER: &str = "credgate-risk";
const LEAKED_HEADER: &str = "credgate-leaked";

/// What the shop received from one kind of actor.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Received {
    pub logins: u64,
    pub risk_medium: u64,
    pub risk_high: u64,
    pub leaked_annotated: u64,
    pub step_ups_asked: u64,
    /// Sessions opened at the login itself, without `Credgate-Risk`.
    pub sessions_unannotated: u64,
    /// Sessions opened at the login itself, on `Credgate-Risk: medium`
    /// (the shop steps up only on high unless `--step-up-medium`).
    pub sessions_at_medium: u64,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, String>,
    challenges: HashMap<String, String>,
    received: BTreeMap<String, Received>,
    next_id: u64,
}

/// A running shop; stops when dropped.
pub struct Shop {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

/// Which `Credgate-Risk` levels get a step-up instead of a session.
#[derive(Debug, Clone, Copy)]
pub struct StepUpPolicy {
    pub on_medium: bool,
}

impl Shop {
    pub async fn start(
        accounts: HashMap<String, String>,
        policy: StepUpPolicy,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            accounts,
            ..State::default()
        }));
        let task = tokio::spawn(serve(listener, state.clone(), policy));
        Ok(Self { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A password reset, done out of band (the e-mail link): the account
    /// gets `password`.
    pub fn reset_password(&self, username: &str, password: &str) {
        let mut state = self.state.lock().expect("shop state");
        state
            .accounts
            .insert(username.to_owned(), password.to_owned());
    }

    /// Logins received so far, by actor tag.
    pub fn received(&self) -> BTreeMap<String, Received> {
        self.state.lock().expect("shop state").received.clone()
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>, policy: StepUpPolicy) {
    let http = auto::Builder::new(TokioExecutor::new());
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state, policy).await) }
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn route(
    req: Request<Incoming>,
    state: &Mutex<State>,
    policy: StepUpPolicy,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut state = state.lock().expect("shop state");
    match (parts.method, parts.uri.path()) {
        (Method::POST, "/login") => state.login(&parts.headers, &form, policy),
        (Method::POST, "/step-up") => state.step_up(&form),
        (Method::POST, "/password-reset") => state.reset_form(&form),
        _ => answer(StatusCode::OK, "shop\n"),
    }
}

// === impl State ===

impl State {
    fn login(
        &mut self,
        headers: &http::HeaderMap,
        form: &HashMap<String, String>,
        policy: StepUpPolicy,
    ) -> Response<Full<Bytes>> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let risk = header(RISK_HEADER).unwrap_or("");
        let actor = header(ACTOR_HEADER).unwrap_or("unknown").to_owned();
        let seen = self.received.entry(actor).or_default();
        seen.logins += 1;
        seen.risk_medium += u64::from(risk == "medium");
        seen.risk_high += u64::from(risk == "high");
        seen.leaked_annotated += u64::from(header(LEAKED_HEADER).is_some());
        let (Some(user), Some(password)) = (form.get("username"), form.get("password")) else {
            return answer(StatusCode::BAD_REQUEST, "username and password, please\n");
        };
        if self.accounts.get(user) != Some(password) {
            return answer(StatusCode::UNAUTHORIZED, "wrong username or password\n");
        }
        if risk == "high" || (risk == "medium" && policy.on_medium) {
            seen.step_ups_asked += 1;
            return self.challenge(user);
        }
        match risk {
            "medium" => seen.sessions_at_medium += 1,
            _ => seen.sessions_unannotated += 1,
        }
        self.session()
    }

    /// A right password from a risky attempt: no session yet, a challenge
    /// (an e-mailed code, a passkey) that only the account's owner passes.
    fn challenge(&mut self, user: &str) -> Response<Full<Bytes>> {
        self.next_id += 1;
        let token = format!("c{}", self.next_id);
        self.challenges.insert(token.clone(), user.to_owned());
        let mut response = answer(StatusCode::OK, "step-up: enter the code we sent you\n");
        let value = http::HeaderValue::from_str(&token).expect("an ASCII token");
        response.headers_mut().insert(STEP_UP_HEADER, value);
        response
    }

    fn step_up(&mut self, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        let passed = form
            .get("challenge")
            .and_then(|token| self.challenges.remove(token));
        match passed {
            Some(_) => self.session(),
            None => answer(StatusCode::UNAUTHORIZED, "wrong code\n"),
        }
    }

    /// Leaks whether the account exists, as many shops' reset forms do.
    fn reset_form(&self, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        match form.get("username").map(|u| self.accounts.contains_key(u)) {
            Some(true) => answer(StatusCode::OK, "we sent you a reset link\n"),
            _ => answer(StatusCode::NOT_FOUND, "no such account\n"),
        }
    }

    fn session(&mut self) -> Response<Full<Bytes>> {
        self.next_id += 1;
        let mut response = answer(StatusCode::FOUND, "");
        let headers = response.headers_mut();
        headers.insert(http::header::LOCATION, "/account".parse().expect("a path"));
        let cookie = format!("session=s{}; Path=/; HttpOnly; Secure", self.next_id);
        headers.insert(
            http::header::SET_COOKIE,
            cookie.parse().expect("a cookie header"),
        );
        response
    }
}

fn answer(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(SHOP_HEADER, http::HeaderValue::from_static("1"));
    response
}
