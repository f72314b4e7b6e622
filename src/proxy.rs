//! The request pipeline: `Proxy::try_handle` reads top to bottom as the
//! stages a request goes through; [`Proxy::handle`] turns every failure into a
//! response and records the outcome exactly once.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{HeaderValue, CONTENT_LENGTH, EXPECT};
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::attack::AttackMode;
mod access;

use crate::authority;
use crate::body::{ProxyBody, Unread};
use crate::client_ip::{ClientIp, TrustedProxies};
use crate::config::{OnUnparsed, RiskAction};
use crate::credentials::{self, LoginBody};
use crate::device::DeviceUser;
use crate::fingerprint::{FingerprintSource, Fingerprints, HttpFingerprint, Ja4};
use crate::leaked::LeakedFilters;
use crate::logging::{self, access::AccessLog};
use crate::metrics::{Metrics, RequestDecision};
use crate::outcome::LoginOutcome;
use crate::rate_limit::AttemptKeys;
use crate::reputation::Observation;
use crate::respond::{self, BlockPage, RequestError};
use crate::risk::{self, Level, Risk};
use crate::route::{LoginRoute, Route, Routes};
use crate::state::{Refusal, State};
use crate::upstream::{Hop, Upstream};
use crate::verdict::{self, Verdict};

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub peer: SocketAddr,
    /// `https` on the TLS listener, `http` on the cleartext one.
    pub scheme: &'static str,
    /// The JA4 of the connection's ClientHello; `None` on the cleartext
    /// listener.
    pub ja4: Option<Ja4>,
    /// The HTTP fingerprint of the connection's first request (HTTP/1.1
    /// header names, or HTTP/2's first frames).
    pub http: Option<HttpFingerprint>,
}

/// What login routes do with what they find.
#[derive(Debug)]
pub struct LoginPolicy {
    pub verdicts: verdict::Policy,
    pub annotate_header: http::HeaderName,
    pub on_unparsed: OnUnparsed,
    pub block_page: BlockPage,
    pub body_read_timeout: Duration,
}

/// Everything the pipeline needs, built at start and again by each reload.
#[derive(Debug)]
pub struct Stages {
    pub upstream: Upstream,
    pub trusted: TrustedProxies,
    pub fingerprint: FingerprintSource,
    pub fingerprints: Fingerprints,
    pub routes: Routes,
    pub leaked: LeakedFilters,
    pub state: State,
    pub attack: AttackMode,
    pub login: LoginPolicy,
    pub risk: Risk,
    pub metrics: Metrics,
    pub access: AccessLog,
}

/// The shared handles of the pipeline. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct Proxy {
    /// Swapped whole by a reload: each request runs on the stages that were
    /// current when it arrived, so none sees half of a change.
    stages: Arc<ArcSwap<Stages>>,
}

/// One request's pipeline: the stages current when it arrived.
struct Pipeline {
    inner: Arc<Stages>,
}

/// What happened to one request, filled in as it moves through the stages
/// and recorded once at the end.
#[derive(Debug)]
struct Record<'a> {
    /// Whether the TCP peer is a trusted proxy: decided once per request.
    peer_trusted: bool,
    /// Known once the forwarded chain has been read.
    client: Option<ClientIp>,
    fingerprint: Option<Ja4>,
    http: Option<&'a HttpFingerprint>,
    login: Option<&'a LoginRoute>,
    decision: RequestDecision,
    risk: Option<Level>,
    /// Known once a login's credentials have been checked.
    verdict: Option<Verdict>,
    /// How long the shop took, when asked.
    upstream: Option<Duration>,
}

/// A checked login attempt on its way to the shop: what to learn from the
/// answer.
#[derive(Debug, Clone, Copy)]
struct Attempt<'a> {
    /// The login route's index.
    route: usize,
    verdict: Verdict,
    keys: AttemptKeys,
    /// False for a body forwarded unparsed (`on_unparsed = "forward"`): its
    /// credentials are unknown, so an unknown answer counts as a failure.
    parsed: bool,
    /// The connection's HTTP fingerprint, for the fingerprint table.
    http: Option<&'a HttpFingerprint>,
    /// Who gets the device cookie if the shop lets the login in: none for
    /// an unparsed body, or a login forwarded as risky (its step-up is not
    /// proven, so its browser is not yet trusted).
    device: Option<DeviceUser>,
}

// === impl Proxy ===

impl Proxy {
    pub fn new(stages: Stages) -> Self {
        Self {
            stages: Arc::new(ArcSwap::from_pointee(stages)),
        }
    }

    /// The stages serving now.
    pub fn stages(&self) -> Arc<Stages> {
        self.stages.load_full()
    }

    /// Serves every request from now on with `stages`; requests in flight
    /// finish on the ones they started with.
    pub fn swap(&self, stages: Stages) {
        self.stages.store(Arc::new(stages));
    }

    /// Never fails: every error becomes a response, logged and counted once.
    pub fn handle<'a>(
        &self,
        req: Request<Incoming>,
        conn: &'a Conn,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'a {
        let inner = self.stages.load_full();
        Pipeline { inner }.handle(req, conn)
    }
}

// === impl Pipeline ===

impl Pipeline {
    /// Not an `async fn`: the pipeline's future is copied whole as it is
    /// built and boxed, and an `async fn` would keep `req` in it twice (once
    /// as passed, once moved into its body). What needs no waiting is done
    /// before the future exists.
    fn handle(
        self,
        mut req: Request<Incoming>,
        conn: &Conn,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + '_ {
        let started = Instant::now();
        let version = req.version();
        let peer_trusted = self.inner.trusted.contains(conn.peer.ip());
        let request_id = access::request_id(&mut req, &self.inner.access, peer_trusted);
        // Only keep the log line's fields when someone will read them.
        let seen = self
            .inner
            .access
            .enabled()
            .then(|| access::Seen::take(&req));
        let req = req.map(|body| Unread::new(body, version));
        async move {
            let mut record = Record {
                peer_trusted,
                client: None,
                fingerprint: None,
                http: conn.http.as_ref(),
                login: None,
                decision: RequestDecision::Allow,
                risk: None,
                verdict: None,
                upstream: None,
            };
            let response = match self.try_handle(req, conn, &mut record).await {
                Ok(response) => response,
                Err(error) => {
                    self.report(&error, conn);
                    if let Some(reason) = error.refusal() {
                        self.inner.metrics.record_refusal(reason);
                    }
                    record.decision = error.decision();
                    respond::for_error(&error, version, &self.inner.login.block_page)
                }
            };
            let elapsed = started.elapsed();
            let metrics = &self.inner.metrics;
            metrics.record_request(record.login, record.decision, elapsed);
            if let Some(seen) = seen {
                let found = access::Found {
                    client: record.client,
                    peer: conn.peer,
                    login: record.login,
                    decision: record.decision.as_str(),
                    verdict: record.verdict,
                    risk: record.risk,
                    ja4: record.fingerprint,
                    http: record.http,
                    upstream: record.upstream,
                    total: elapsed,
                    // Text either way: a kept id was checked, ours is hex.
                    request_id: request_id.to_str().unwrap_or_default(),
                };
                seen.write(&self.inner.access, found, &response);
            }
            Ok(response)
        }
    }

    /// The pipeline, one line per stage.
    async fn try_handle<'a>(
        &'a self,
        mut req: Request<Unread>,
        conn: &'a Conn,
        record: &mut Record<'a>,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let host = authority::resolve(&req)?;
        let client = self.inner.trusted.resolve(conn.peer.ip(), req.headers());
        record.client = Some(client);
        let peer_trusted = record.peer_trusted;
        record.fingerprint =
            (self.inner.fingerprint).resolve(conn.ja4, peer_trusted, req.headers_mut());
        // No client may forge a verdict: the header is ours alone.
        req.headers_mut().remove(&self.inner.login.annotate_header);
        req.headers_mut().remove(risk::HEADER);
        let route = self.inner.routes.resolve(&req);
        record.login = route.login();
        self.inner.routes.admit(&req, route)?;
        self.inner
            .state
            .screen(client, record.login.is_some())
            .await?;
        if record.login.is_some() {
            self.inner.state.screen_fingerprint(record.fingerprint)?;
        }
        let (req, attempt) = match route {
            Route::Passthrough | Route::LoginPage(_) => {
                (req.map(|body| Either::Left(body.take())), None)
            }
            // Boxed: its future is the largest stage's, and every request's
            // future, a passthrough's too, would otherwise be allocated and
            // moved at that size. A login pays one allocation for it.
            Route::Login(route) => Box::pin(self.inspect_login(req, route, client, record)).await?,
        };
        let (mut response, elapsed) = self
            .inner
            .upstream
            .forward(req, host, hop(conn, peer_trusted))
            .await?;
        self.inner.metrics.record_upstream(elapsed);
        record.upstream = Some(elapsed);
        if let (Some(attempt), Some(route)) = (attempt, record.login) {
            let outcome = route.failure.classify(&response);
            self.settle_risk(attempt, outcome, response.headers_mut())
                .await;
            self.learn(client, attempt, Some(outcome)).await;
        }
        Ok(response.map(Either::Left))
    }

    /// A login attempt: read the body, extract the credentials, apply the
    /// limits, check the filters, decide. Returns the request to forward,
    /// with the inspected bytes, and the attempt to learn from (none when
    /// the body was forwarded unparsed).
    async fn inspect_login<'a>(
        &'a self,
        req: Request<Unread>,
        route: &'a LoginRoute,
        client: ClientIp,
        record: &mut Record<'a>,
    ) -> Result<(Request<ProxyBody>, Option<Attempt<'a>>), RequestError> {
        let login = &self.inner.login;
        let (mut parts, body) = req.into_parts();
        let body = credentials::read_body(&parts, body, route, login.body_read_timeout).await?;
        if !credentials::is_attempt(&body, route) {
            return Ok((inspected_request(parts, body), None));
        }
        let credentials = match credentials::extract(&body, route) {
            Ok(credentials) => credentials,
            Err(e) if e.forwardable() && login.on_unparsed == OnUnparsed::Forward => {
                tracing::debug!(route = route.name, error = %e, "forwarding an unparsed login");
                let attempt = self
                    .admit_unparsed(route, client, record.fingerprint, record.http)
                    .await?;
                record.decision = RequestDecision::Unparsed;
                return Ok((inspected_request(parts, body), Some(attempt)));
            }
            Err(e) => return Err(e.into()),
        };
        let username = self.inner.leaked.normalize(credentials.username.as_str());
        let risk = &self.inner.risk;
        let keys = AttemptKeys {
            client,
            username: self.inner.state.username_key(&username),
            fingerprint: record.fingerprint,
            known_device: (risk.device).recognizes(&parts.headers, &username, SystemTime::now()),
        };
        self.inner.state.admit(&keys).await?;
        let found = self.inner.leaked.check(&username, &credentials.password);
        let signals = risk.signals(route.index, &keys, found.password).await;
        let (verdict, decision) = verdict::decide(&found.into(), &login.verdicts);
        self.inner.metrics.record_login_attempt(verdict);
        record.verdict = Some(verdict);
        record.decision = RequestDecision::from(decision);
        let attempt = Attempt {
            route: route.index,
            verdict,
            keys,
            parsed: true,
            http: record.http,
            device: Some(risk.device.user(&username)),
        };
        match decision {
            verdict::Decision::Block => {
                if verdict == Verdict::LeakedPair {
                    self.inner.state.refund_username(&keys).await;
                }
                self.learn(client, attempt, None).await;
                return Err(RequestError::Blocked(verdict));
            }
            verdict::Decision::Annotate(verdict) => {
                let value = HeaderValue::from_static(verdict.annotation().unwrap_or(""));
                parts.headers.insert(&login.annotate_header, value);
            }
            verdict::Decision::Allow | verdict::Decision::Shadow(_) => {}
        }
        let attempt = self
            .act_on_risk(&signals, &mut parts, attempt, record)
            .await?;
        Ok((inspected_request(parts, body), Some(attempt)))
    }

    /// Assesses the attempt's risk and does what `[risk]` says at its
    /// level: forward, forward annotated, or refuse (learning from the
    /// refusal as from a block).
    async fn act_on_risk<'a>(
        &self,
        signals: &risk::Signals,
        parts: &mut Parts,
        mut attempt: Attempt<'a>,
        record: &mut Record<'_>,
    ) -> Result<Attempt<'a>, RequestError> {
        let (level, over_budget) = self.inner.risk.level(signals);
        if over_budget {
            self.inner.metrics.record_untrusted_over_budget();
        }
        self.inner.metrics.record_login_risk(level);
        record.risk = Some(level);
        let client = attempt.keys.client;
        match self.inner.risk.policy.action(level) {
            RiskAction::Allow => {}
            RiskAction::Annotate => {
                let value = HeaderValue::from_static(level.as_str());
                parts.headers.insert(risk::HEADER, value);
                attempt.device = None;
                record.decision = RequestDecision::Annotate;
            }
            RiskAction::Throttle => {
                self.learn(client, attempt, None).await;
                return Err(RequestError::RiskThrottled(level));
            }
            RiskAction::Block => {
                self.learn(client, attempt, None).await;
                return Err(RequestError::RiskBlocked(level));
            }
        }
        Ok(attempt)
    }

    /// Tells risk what the shop answered, and hands a trusted login's
    /// browser its device cookie.
    async fn settle_risk(
        &self,
        attempt: Attempt<'_>,
        outcome: LoginOutcome,
        headers: &mut http::HeaderMap,
    ) {
        if attempt.parsed {
            (self.inner.risk)
                .settle(&attempt.keys, attempt.device, outcome, headers)
                .await;
        }
    }

    /// An unparsed login skips the leaked check, not the limits: it is
    /// charged to the client's address, subnet and the global limit. Its
    /// username is unknown, so it is keyed per client: the username limit
    /// cannot be dodged by sending what credgate cannot parse.
    async fn admit_unparsed<'a>(
        &self,
        route: &LoginRoute,
        client: ClientIp,
        fingerprint: Option<Ja4>,
        http: Option<&'a HttpFingerprint>,
    ) -> Result<Attempt<'a>, RequestError> {
        let keys = AttemptKeys {
            client,
            username: self
                .inner
                .state
                .username_key(&format!("\0unparsed {client}")),
            fingerprint,
            known_device: false,
        };
        self.inner.state.admit(&keys).await?;
        Ok(Attempt {
            route: route.index,
            verdict: Verdict::Clean,
            keys,
            parsed: false,
            http,
            device: None,
        })
    }

    /// Counts the shop's answer (`None`: the attempt never reached the
    /// shop) and tells the state what the attempt showed.
    async fn learn(&self, client: ClientIp, attempt: Attempt<'_>, outcome: Option<LoginOutcome>) {
        if let (Some(outcome), true) = (outcome, attempt.parsed) {
            self.inner
                .metrics
                .record_login_outcome(outcome, attempt.verdict);
        }
        if outcome == Some(LoginOutcome::Success) {
            self.inner.state.refund(&attempt.keys).await;
        }
        let failed = match attempt.parsed {
            true => outcome.and_then(LoginOutcome::failed),
            false => Some(outcome != Some(LoginOutcome::Success)),
        };
        // A replayed leaked pair is a campaign's attempt that never reached
        // the shop: the detector counts it as the failure it would have been,
        // so that a combo list mixing known and unknown breaches switches
        // attack mode on sooner.
        let leaked_block = outcome.is_none() && attempt.verdict == Verdict::LeakedPair;
        let detected = failed.or(leaked_block.then_some(true));
        self.inner.attack.record(attempt.route, detected);
        if let Some(ja4) = attempt.keys.fingerprint {
            let now = Instant::now();
            (self.inner.fingerprints).record(ja4, attempt.http.copied(), client.0, failed, now);
        }
        let observation = Observation {
            username: attempt.keys.username,
            leaked_pair: attempt.verdict == Verdict::LeakedPair,
            failed,
        };
        for ban in self.inner.state.observe(client, observation).await {
            self.inner.metrics.record_ban(ban.reason);
        }
    }

    fn report(&self, error: &RequestError, conn: &Conn) {
        if let RequestError::Refused(Refusal::Throttled(t)) = error {
            self.inner.metrics.record_rate_limited(t.limit);
        }
        match error {
            RequestError::AmbiguousHost(_)
            | RequestError::Route(_)
            | RequestError::Body(_)
            | RequestError::Credentials(_)
            | RequestError::Blocked(_)
            | RequestError::RiskThrottled(_)
            | RequestError::RiskBlocked(_)
            | RequestError::Refused(_) => {
                tracing::debug!(peer = %conn.peer, error = %error, "request refused");
            }
            RequestError::Upstream(e) => {
                self.inner.metrics.record_upstream_error(e.kind());
                tracing::warn!(kind = e.kind().as_str(), error = %logging::chain(e), "upstream failed");
            }
        }
    }
}

/// The request to forward after inspection: the bytes that were inspected,
/// framed afresh. The client's framing headers (`Transfer-Encoding`,
/// `Expect`) describe a body that no longer exists.
fn inspected_request(mut parts: Parts, body: LoginBody) -> Request<ProxyBody> {
    parts.headers.remove(EXPECT);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.bytes.len()));
    Request::from_parts(parts, Either::Right(Full::new(body.bytes)))
}

/// The hop the shop is told about; whether the peer is trusted was decided
/// once, when the client address was resolved.
fn hop(conn: &Conn, peer_trusted: bool) -> Hop {
    Hop {
        peer: conn.peer.ip(),
        peer_trusted,
        scheme: conn.scheme,
    }
}
