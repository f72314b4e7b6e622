//! Listeners, connections and the process lifecycle.
//!
//! Each listener runs an accept loop that holds a connection permit before it
//! accepts, so at `max_connections` the proxy stops accepting and the kernel
//! backlog absorbs the excess instead of our memory. Every connection gets a
//! TLS handshake deadline, hyper's header-read deadline, an idle deadline, and
//! is drained gracefully on shutdown.

mod capture;
mod hello;
mod idle;
mod prefixed;
mod protocol;
mod stages;
mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1::UpgradeableConnection;
use hyper::service::{service_fn, HttpService};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::Registry;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{Admin, AdminParts, AdminToken};
use crate::attack::AttackMode;
use crate::config::{self, Config};
use crate::fingerprint::{Fingerprints, Ja4};
use crate::leaked::LeakedFilters;
use crate::logging::LevelControl;
use crate::metrics::Metrics;
use crate::proxy::{Conn, Proxy};
use crate::reload::{ConfigFile, Reloader};
use crate::risk::RiskMemory;
use crate::state::State;
use crate::tls::{self, validity, CertStore};
use crate::upstream::{upgrade_of, Upstream};
use capture::{Capture, CaptureIo};
use idle::{Activity, ActivityIo, Rest, Silence, Tracked, REST_AFTER};
use prefixed::Prefixed;
use protocol::{Builders, Protocol};
use stages::Kept;
use tunnel::Tunnel;

// Bounds the admin listener on its own: a scrape storm must not be able to
// take proxy connection slots, nor the other way round.
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// How often expired bans and idle limiter keys are dropped, and the state
/// gauges updated.
const STATE_MAINTENANCE: Duration = Duration::from_secs(5);

/// How often attack mode is evaluated: often enough to switch within
/// seconds, seldom enough to average a second's worth of logins.
const ATTACK_TICK: Duration = Duration::from_secs(1);

/// Every [`ATTACK_TICK`]: evaluates attack mode on every login route, trades
/// it with the other replicas through the state, and sets the gauges, until
/// `shutdown`.
async fn watch_attacks(
    attack: AttackMode,
    state: State,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(ATTACK_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let detected = attack.tick(std::time::Instant::now());
        if let Some(shared) = state.share_attacks(&attack, &detected).await {
            attack.share(&shared);
        }
        metrics.record_attack_mode(attack.each_on());
    }
}

/// Every [`STATE_MAINTENANCE`]: expires bans, forgets idle limiter keys,
/// closes shop connections idle too long, updates the state gauges, until
/// `shutdown`.
async fn maintain(
    state: State,
    fingerprints: Fingerprints,
    proxy: Proxy,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(STATE_MAINTENANCE);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let (bans_active, tracked_clients) = state.maintain().await;
        metrics.record_state(bans_active, tracked_clients);
        metrics.record_ban_snapshot(state.snapshot_failing());
        let now = std::time::Instant::now();
        fingerprints.expire(now);
        metrics.record_fingerprints(fingerprints.len());
        proxy.stages().upstream.expire_idle(now);
    }
}

/// The addresses the server actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub proxy: SocketAddr,
    pub plain: Option<SocketAddr>,
    pub admin: SocketAddr,
}

/// A bound, ready-to-run credgate.
pub struct Server {
    proxy_listener: TcpListener,
    plain_listener: Option<TcpListener>,
    admin_listener: TcpListener,
    tls: TlsAcceptor,
    reloader: Reloader,
    state: State,
    attack: AttackMode,
    fingerprints: Fingerprints,
    /// How often filter files are checked for replacement; zero: never.
    watch_interval: Duration,
    proxy: Proxy,
    admin: Admin,
    metrics: Metrics,
    limits: Arc<ConnLimits>,
}

/// Everything a server is made of but its sockets.
struct Parts {
    tls: TlsAcceptor,
    reloader: Reloader,
    state: State,
    attack: AttackMode,
    fingerprints: Fingerprints,
    proxy: Proxy,
    admin: Admin,
    metrics: Metrics,
}

impl Parts {
    fn build(config: &Config) -> anyhow::Result<Self> {
        let provider = tls::provider();
        let s = &config.server;
        let certs = CertStore::load(&s.tls_cert, &s.tls_key, provider.clone()).map_err(|e| {
            let key = e.config_key();
            anyhow::Error::new(e).context(format!("key `{key}`"))
        })?;
        let certs = Arc::new(certs);
        let tls = TlsAcceptor::from(certs.server_config()?);
        let registry = Registry::new();
        let routes = stages::routes(config)?;
        let metrics = Metrics::new(&registry, &routes).context("cannot register metrics")?;
        let leaked =
            LeakedFilters::load(&config.leaked).context("[leaked]: cannot load the filters")?;
        for serving in leaked.serving() {
            metrics.record_filter_loaded(&serving);
            metrics.record_filter_max_age(serving.kind, config.leaked.max_filter_age.0);
        }
        metrics.record_tls_certificate(certs.not_after());
        let upstream = Upstream::new(&config.upstream, provider)
            .context("[upstream]")?
            .strip_client_headers(s.strip_client_headers.iter().map(|h| h.0.clone()));
        let state = State::new(config, metrics.state_backend_errors());
        let fingerprints = Fingerprints::new(config.suspicion.window.0);
        let attack = AttackMode::new(&config.attack, &routes);
        let kept = Kept {
            upstream: upstream.clone(),
            fingerprints: fingerprints.clone(),
            leaked: leaked.clone(),
            state: state.clone(),
            attack: attack.clone(),
            metrics: metrics.clone(),
            memory: Arc::new(RiskMemory::new(config)),
            device: None,
        };
        let proxy = Proxy::new(stages::build(config, kept)?);
        let reloader = Reloader::new(certs, leaked, metrics.clone());
        let admin = Admin::new(AdminParts {
            registry,
            metrics: metrics.clone(),
            upstream,
            state: state.clone(),
            attack: attack.clone(),
            fingerprints: fingerprints.clone(),
            token: admin_token(s)?,
            reloader: reloader.clone(),
        });
        Ok(Self {
            tls,
            reloader,
            state,
            attack,
            fingerprints,
            proxy,
            admin,
            metrics,
        })
    }
}

/// Per-connection settings shared by every accept loop.
#[derive(Debug)]
struct ConnLimits {
    http: Builders,
    handshake_timeout: Duration,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    shutdown_grace: Duration,
    max_connections: usize,
}

/// What a listener serves.
#[derive(Clone)]
enum App {
    Proxy { proxy: Proxy, scheme: &'static str },
    Admin(Admin),
}

// === impl Server ===

impl Server {
    /// Builds every part from `config` and binds the listeners.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let parts = Parts::build(config)?;
        // A shared backend that is down does not stop the start: the
        // replica serves under `on_backend_error` and keeps trying. One of
        // the wrong kind (cluster or not) does.
        parts.state.connect().await?;
        parts
            .state
            .restore_bans()
            .context("key `state.ban_snapshot`")?;
        let s = &config.server;
        Ok(Self {
            proxy_listener: bind(s.listen, "server.listen").await?,
            plain_listener: match s.listen_plain {
                Some(addr) => Some(bind(addr, "server.listen_plain").await?),
                None => None,
            },
            admin_listener: bind(s.admin_listen, "server.admin_listen").await?,
            tls: parts.tls,
            reloader: parts.reloader,
            state: parts.state,
            attack: parts.attack,
            fingerprints: parts.fingerprints,
            watch_interval: config.leaked.watch_interval.0,
            proxy: parts.proxy,
            admin: parts.admin,
            metrics: parts.metrics,
            limits: Arc::new(ConnLimits::new(s)),
        })
    }

    /// Loads everything `config` names (certificate, filters, token, block
    /// page) without binding anything: `credgate check-config`.
    /// Builds every part as `serve` would, and returns warnings: a
    /// certificate that expired or expires soon.
    pub fn check(config: &Config) -> anyhow::Result<Vec<String>> {
        Parts::build(config)?;
        let s = &config.server;
        let certs = CertStore::load(&s.tls_cert, &s.tls_key, tls::provider())?;
        let now = std::time::SystemTime::now();
        let warning = certs
            .not_after()
            .and_then(|at| validity::expiry_warning(at, now));
        Ok(warning.into_iter().collect())
    }

    /// Makes SIGHUP and `POST /admin/reload` re-read `path`, the file
    /// `config` was loaded from, and apply what changed (see [`crate::reload`]).
    pub fn reload_config_from(self, path: &Path, config: &Config, level: LevelControl) -> Self {
        let proxy = self.proxy.clone();
        let file = ConfigFile::new(path, config.clone(), proxy, stages::rebuild, level);
        self.reloader.read_config_from(file);
        self
    }

    pub fn addrs(&self) -> Addrs {
        let addr = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
        Addrs {
            proxy: addr(&self.proxy_listener),
            plain: self.plain_listener.as_ref().map(addr),
            admin: addr(&self.admin_listener),
        }
    }

    /// Serves until `shutdown` is cancelled, then drains: no new connections,
    /// in-flight requests get `shutdown_grace` to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let proxy_slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut loops = tokio::task::JoinSet::new();
        let proxy_app = |scheme| App::Proxy {
            proxy: self.proxy.clone(),
            scheme,
        };
        let mut spawn = |listener, tls, app, slots| {
            let acceptor = Acceptor {
                tls,
                app,
                slots,
                limits: self.limits.clone(),
                metrics: self.metrics.clone(),
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
            };
            loops.spawn(acceptor.run(listener));
        };
        spawn(
            self.proxy_listener,
            Some(self.tls),
            proxy_app("https"),
            proxy_slots.clone(),
        );
        if let Some(listener) = self.plain_listener {
            spawn(listener, None, proxy_app("http"), proxy_slots);
        }
        let admin_slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
        spawn(
            self.admin_listener,
            None,
            App::Admin(self.admin),
            admin_slots,
        );
        if !self.watch_interval.is_zero() {
            let reloader = self.reloader.clone();
            loops.spawn(reloader.watch_filters(self.watch_interval, shutdown.clone()));
        }
        loops.spawn(watch_attacks(
            self.attack.clone(),
            self.state.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        loops.spawn(maintain(
            self.state.clone(),
            self.fingerprints.clone(),
            self.proxy.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        ));

        shutdown.cancelled().await;
        tracing::info!("shutting down: listeners closed, draining open connections");
        while loops.join_next().await.is_some() {}
        tracker.close();
        let grace = self.limits.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                connections = tracker.len(),
                "shutdown grace period over; closing the remaining connections"
            );
        }
        // Last, so that a ban made while draining is kept too.
        self.state.save_bans().await;
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads.
    pub async fn run_until_signalled(self, mut signals: Signals) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let reloader = self.reloader.clone();
        let serving = tokio::spawn(self.run(shutdown.clone()));
        loop {
            tokio::select! {
                _ = signals.hangup.recv() => {
                    reloader.reload().await;
                }
                _ = signals.terminate.recv() => break,
                _ = signals.interrupt.recv() => break,
            }
        }
        shutdown.cancel();
        serving.await.context("the server task failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The signals credgate acts on. Install them before announcing that the
/// server is up: until then a SIGHUP would still kill the process.
pub struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            hangup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }
}

fn admin_token(s: &config::Server) -> anyhow::Result<Option<AdminToken>> {
    s.admin_token_file
        .as_deref()
        .map(AdminToken::load)
        .transpose()
        .context("key `server.admin_token_file`")
}

async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

// === impl ConnLimits ===

impl ConnLimits {
    fn new(s: &config::Server) -> Self {
        Self {
            http: Builders::new(s),
            handshake_timeout: s.tls_handshake_timeout.0,
            header_read_timeout: s.header_read_timeout.0,
            idle_timeout: s.idle_timeout.0,
            shutdown_grace: s.shutdown_grace.0,
            max_connections: s.max_connections,
        }
    }
}

// === impl Acceptor ===

/// One listener's accept loop and what each of its connections needs.
struct Acceptor {
    tls: Option<TlsAcceptor>,
    app: App,
    slots: Arc<Semaphore>,
    limits: Arc<ConnLimits>,
    metrics: Metrics,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let this = Arc::new(self);
        loop {
            let permit = tokio::select! {
                permit = this.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = this.shutdown.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = this.shutdown.cancelled() => break,
            };
            let this = this.clone();
            this.tracker.clone().spawn(async move {
                let _permit = permit;
                this.serve(stream, peer).await;
            });
        }
    }

    async fn serve(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let _open = match self.app {
            App::Proxy { .. } => Some(self.metrics.connection_opened()),
            App::Admin(_) => None,
        };
        let Some(tls) = &self.tls else {
            return self.serve_http(stream, peer, None, Protocol::Detect).await;
        };
        // One deadline covers the ClientHello read and the handshake.
        // Boxed, and the stream kept inside the block below: this task
        // lives as long as the connection, and the handshake's state (the
        // TLS session while it is being set up) and the stream handed on
        // would otherwise stay reserved in it, over 2 KB per connection.
        let handshake = Box::pin(async {
            let (ja4, replayed) = hello::read(stream).await?;
            let stream = tls
                .accept(replayed)
                .await
                .map_err(hello::HelloError::Handshake)?;
            Ok::<_, hello::HelloError>((ja4, stream))
        });
        let served = match tokio::time::timeout(self.limits.handshake_timeout, handshake).await {
            Ok(Ok((ja4, stream))) => {
                let protocol = Protocol::from_alpn(stream.get_ref().1.alpn_protocol());
                self.serve_http(stream, peer, Some(ja4), protocol)
            }
            Ok(Err(e)) => {
                self.metrics.record_tls_handshake_error();
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.metrics.record_tls_handshake_error();
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        served.await
    }

    /// Not an `async fn`: the connection's task lives as long as the
    /// connection, idle or not, and an `async fn` would keep the transport
    /// (over a kilobyte with TLS) a second time beside the hyper connection
    /// that owns it.
    fn serve_http<I>(
        &self,
        io: I,
        peer: SocketAddr,
        ja4: Option<Ja4>,
        protocol: Protocol,
    ) -> impl Future<Output = ()> + Send + '_
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let capture = Arc::new(Capture::default());
        let io = ActivityIo::new(CaptureIo::new(io, capture.clone()), activity.clone());
        let app = self.app.clone();
        // Set when the shop switched protocols: both ends, to join once
        // hyper lets go of the connection.
        let tunnel: Arc<Mutex<Option<Tunnel>>> = Arc::default();
        let upgraded = tunnel.clone();
        let exchanges = activity.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            let upgraded = upgraded.clone();
            let capture = capture.clone();
            let exchange = exchanges.begin(!hyper::body::Body::is_end_stream(req.body()));
            // Boxed: hyper moves a service's future around (into the HTTP/1
            // dispatcher's slot, into a task per HTTP/2 stream), and the
            // pipeline's is kilobytes; boxed, it is copied once and hyper
            // moves a pointer. The HTTP/1 slot also lives as long as the
            // connection: a pointer's size there keeps idle connections small.
            Box::pin(async move {
                let response = match app {
                    App::Proxy { proxy, scheme } => {
                        let client =
                            upgrade_of(req.headers()).map(|_| hyper::upgrade::on(&mut req));
                        let http = capture.fingerprint();
                        let conn = Conn {
                            peer,
                            scheme,
                            ja4,
                            http,
                        };
                        let Ok(mut response) = proxy.handle(req, &conn).await;
                        if let Some(client) = client {
                            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                                let shop = hyper::upgrade::on(&mut response);
                                *upgraded.lock().expect("never poisoned") = Some((client, shop));
                            }
                        }
                        response
                    }
                    App::Admin(admin) => admin.handle(req).await,
                };
                Ok::<_, std::convert::Infallible>(response.map(|b| Tracked::new(b, exchange)))
            })
        });
        let http = &self.limits.http;
        let served = match protocol {
            Protocol::Http1 => self.drive_http1(io, service, activity.clone(), peer),
            Protocol::Http2 => {
                let conn = http.http2.serve_connection(TokioIo::new(io), service);
                self.drive(conn, |c| c.graceful_shutdown(), activity.clone(), peer)
            }
            Protocol::Detect => {
                let conn = http
                    .detect
                    .serve_connection_with_upgrades(TokioIo::new(io), service);
                self.drive(conn, |c| c.graceful_shutdown(), activity.clone(), peer)
            }
        };
        async move {
            let ended = served.await;
            let upgraded = tunnel.lock().expect("never poisoned").take();
            if let (true, Some(upgraded)) = (ended, upgraded) {
                let idle = self.limits.idle_timeout;
                // Boxed: rare, and its state would be reserved in every
                // connection's task.
                Box::pin(tunnel::join(
                    upgraded,
                    &activity,
                    idle,
                    &self.shutdown,
                    peer,
                ))
                .await;
            }
        }
    }

    /// Serves `conn` until it ends (true), or until it stays silent through
    /// two idle periods (false).
    ///
    /// Boxed, the connection and this future apart: a connection's task
    /// then holds one pointer, whatever the protocol, instead of the
    /// largest protocol's state (HTTP/2's, about 6 KB) inline, and hyper's
    /// connection is kept once, not as passed and again as pinned.
    fn drive<'a, C, E>(
        &'a self,
        conn: C,
        graceful: impl Fn(Pin<&mut C>) + Send + 'a,
        activity: Activity,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>
    where
        C: Future<Output = Result<(), E>> + Send + 'a,
        E: std::fmt::Display,
    {
        let mut conn = Box::pin(conn);
        Box::pin(async move {
            let watched = self
                .watch(conn.as_mut(), graceful, &activity, peer, Rest::Never)
                .await;
            watched == Watched::Ended
        })
    }

    /// Serves an HTTP/1 connection as [`Self::drive`] does, and lets it
    /// rest whenever it has been silent between exchanges for
    /// [`REST_AFTER`]: hyper's connection, buffers and all, is dropped, and
    /// a new one is made when the client sends its next byte.
    fn drive_http1<'a, I, S, B>(
        &'a self,
        io: I,
        service: S,
        activity: Activity,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService<Incoming, ResBody = B> + Unpin + Send + 'a,
        S::Future: Unpin + Send,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Moved into the future as they are, not rebound inside it: a
        // rebound argument is reserved twice in the future (over a kilobyte
        // for the TLS stream).
        let mut io = Prefixed::new(io);
        let mut service = service;
        Box::pin(async move {
            let mut rest = Rest::WhenIdle;
            loop {
                let http1 = &self.limits.http.http1;
                // Boxed: this future lives as long as the connection, and
                // at rest it must not keep room for hyper's state inline.
                let mut conn = Box::new(
                    http1
                        .serve_connection(TokioIo::new(io), service)
                        .with_upgrades(),
                );
                let graceful = |c: Pin<&mut _>| UpgradeableConnection::graceful_shutdown(c);
                match self
                    .watch(Pin::new(&mut *conn), graceful, &activity, peer, rest)
                    .await
                {
                    Watched::Ended => return true,
                    Watched::Dropped => return false,
                    Watched::Resting => {}
                }
                // Between exchanges: hyper holds at most the start of a
                // request head, which goes back ahead of the transport.
                // Even empty, the read buffer may hold hyper's allocation.
                let unparsed = {
                    let Some(parts) = conn.into_parts() else {
                        return true;
                    };
                    io = parts.io.into_inner();
                    service = parts.service;
                    parts.read_buf
                };
                if !unparsed.is_empty() {
                    io.unread(unparsed);
                    rest = Rest::AfterExchange(activity.begun());
                    continue;
                }
                drop(unparsed);
                rest = Rest::WhenIdle;
                if !self.rest(&mut io, &activity, peer).await {
                    return true;
                }
            }
        })
    }

    /// Waits, holding nothing of hyper's, for the client's next byte, and
    /// puts it back for the next hyper connection. False when the
    /// connection is to close instead: no request in the time hyper would
    /// have waited (`header_read_timeout`, or `idle_timeout` if shorter),
    /// shutdown, or the client closed.
    async fn rest<I>(&self, io: &mut Prefixed<I>, activity: &Activity, peer: SocketAddr) -> bool
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let _resting = self.metrics.connection_resting();
        let limits = &self.limits;
        let due = activity.last() + limits.header_read_timeout.min(limits.idle_timeout);
        let mut byte = [0u8; 1];
        let read = tokio::select! {
            read = io.read(&mut byte) => read,
            _ = tokio::time::sleep_until(due) => Ok(0),
            _ = self.shutdown.cancelled() => Ok(0),
        };
        match read {
            Ok(0) => {
                // As hyper closes an idle connection: TLS close_notify, then
                // FIN; a client that does not read does not hold us.
                let _ = tokio::time::timeout(limits.idle_timeout, io.shutdown()).await;
                false
            }
            Ok(_) => {
                io.unread(Bytes::copy_from_slice(&byte));
                true
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
                false
            }
        }
    }

    /// Serves `conn` until it ends, until it stays silent through two idle
    /// periods, or until it may rest as `rest` says. `graceful` asks it to
    /// finish: on shutdown, and at the first idle period.
    async fn watch<C, E>(
        &self,
        mut conn: Pin<&mut C>,
        graceful: impl Fn(Pin<&mut C>),
        activity: &Activity,
        peer: SocketAddr,
        rest: Rest,
    ) -> Watched
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut draining = false;
        let mut idle_warned = false;
        let idle_timeout = self.limits.idle_timeout;
        // A draining connection closes; it does not rest.
        let may_rest = |draining: bool| if draining { Rest::Never } else { rest };
        loop {
            tokio::select! {
                // The connection first: it is what woke the task, nearly
                // always, and no branch can starve another (each completes
                // once, and ends or restarts the loop).
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return Watched::Ended;
                }
                _ = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    graceful(conn.as_mut());
                }
                silence = activity.silence(idle_timeout, REST_AFTER, may_rest(draining)) => {
                    if silence == Silence::Rest {
                        return Watched::Resting;
                    }
                    // First silence: ask politely (HTTP/2 GOAWAY, HTTP/1
                    // close when idle). A client that stays silent through a
                    // second period, e.g. one that never acknowledges the
                    // GOAWAY, is dropped.
                    if idle_warned {
                        tracing::debug!(%peer, "closing a connection that stayed idle");
                        return Watched::Dropped;
                    }
                    idle_warned = true;
                    activity.touch();
                    if !draining {
                        draining = true;
                        graceful(conn.as_mut());
                    }
                }
            }
        }
    }
}

/// How [`Acceptor::watch`] let go of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    Ended,
    /// Silent through two idle periods.
    Dropped,
    /// Between exchanges and silent: see [`idle`].
    Resting,
}
