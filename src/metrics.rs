//! Typed Prometheus collectors on an injected [`Registry`].
//!
//! Every label value comes from an enum's `as_str()`, so the set of series is
//! fixed by the type system: no IP, username or password can ever become a
//! label, and cardinality cannot grow with traffic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use crate::leaked::FilterKind;
use crate::outcome::LoginOutcome;
use crate::rate_limit::LimitKind;
use crate::reputation::BanReason;
use crate::route::{LoginRoute, Routes};
use crate::verdict::{self, Verdict};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// What the proxy did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded to the shop unchanged.
    Allow,
    /// Forwarded with the annotation header.
    Annotate,
    /// Refused with 403: a leaked pair or password, a ban, the deny list.
    Block,
    /// Refused with 429: over a rate limit.
    Throttle,
    /// Forwarded unchanged although a policy would have acted.
    Shadow,
    /// A login body that did not parse, forwarded (`on_unparsed = "forward"`).
    Unparsed,
    /// Refused as malformed or ambiguous (a 4xx of our own).
    Reject,
    /// The shop could not be reached or did not answer in time.
    UpstreamError,
}

impl Decision {
    pub const ALL: [Decision; 8] = [
        Self::Allow,
        Self::Annotate,
        Self::Block,
        Self::Throttle,
        Self::Shadow,
        Self::Unparsed,
        Self::Reject,
        Self::UpstreamError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Annotate => "annotate",
            Self::Block => "block",
            Self::Throttle => "throttle",
            Self::Shadow => "shadow",
            Self::Unparsed => "unparsed",
            Self::Reject => "reject",
            Self::UpstreamError => "upstream_error",
        }
    }
}

impl From<verdict::Decision> for Decision {
    fn from(d: verdict::Decision) -> Self {
        match d {
            verdict::Decision::Allow => Self::Allow,
            verdict::Decision::Annotate(_) => Self::Annotate,
            verdict::Decision::Block => Self::Block,
            verdict::Decision::Shadow(_) => Self::Shadow,
        }
    }
}

/// Which kind of route a request took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Login,
    Passthrough,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Passthrough => "passthrough",
        }
    }
}

/// Why the shop could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 3] = [Self::Connect, Self::Timeout, Self::Protocol];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

/// All of credgate's collectors. Cloning is shallow.
///
/// The series a request touches are resolved once, at start: a request
/// increments a counter it already holds instead of hashing label values.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    passthrough: RouteSeries,
    logins: Vec<RouteSeries>,
    login_attempts: [IntCounter; 3],
    /// By outcome, then verdict.
    login_outcomes: [[IntCounter; 3]; 3],
    rate_limited: [IntCounter; LimitKind::ALL.len()],
    bans: [IntCounter; BanReason::ALL.len()],
    bans_active: IntGauge,
    tracked_clients: IntGauge,
    upstream_duration: Histogram,
    upstream_errors: [IntCounter; 3],
    tls_handshake_errors: IntCounter,
    state_backend_errors: IntCounter,
    tls_reloads: [IntCounter; 2],
    open_connections: IntGauge,
    // Filters load and reload rarely: their series are looked up by label
    // when it happens, and exist only for the filters configured.
    filter_items: IntGaugeVec,
    filter_loaded: GaugeVec,
    filter_reloads: IntCounterVec,
}

/// One route's series: a request counter per decision and its latency.
#[derive(Debug)]
struct RouteSeries {
    decisions: [IntCounter; Decision::ALL.len()],
    duration: Histogram,
}

// Latency buckets from 0.5 ms to 30 s: a proxy hop is sub-millisecond, a slow
// shop is seconds, and both ends need resolution.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Creates the collectors, with the series of every route in `routes`,
    /// and registers them, with the process collector (CPU, memory, open file
    /// descriptors), on `registry`. Every series exists from the start, at
    /// zero, so dashboards and `rate()` see it before the first event.
    pub fn new(registry: &Registry, routes: &Routes) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("credgate_requests_total", "Requests by route and decision."),
            &["route", "decision"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "credgate_request_duration_seconds",
                "Time from request head to response head, by kind of route.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route_kind"],
        )?;
        let login_attempts = IntCounterVec::new(
            Opts::new(
                "credgate_login_attempts_total",
                "Login attempts whose credentials were checked, by verdict.",
            ),
            &["verdict"],
        )?;
        let login_outcomes = IntCounterVec::new(
            Opts::new(
                "credgate_login_outcomes_total",
                "Forwarded login attempts by the shop's answer and credgate's verdict.",
            ),
            &["outcome", "verdict"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "credgate_rate_limited_total",
                "Attempts refused by a rate limit.",
            ),
            &["limit"],
        )?;
        let bans = IntCounterVec::new(
            Opts::new("credgate_bans_total", "Bans imposed, by reason."),
            &["reason"],
        )?;
        let bans_active = IntGauge::new("credgate_bans_active", "Bans in force.")?;
        let tracked_clients = IntGauge::new(
            "credgate_tracked_clients",
            "Clients whose suspicion state is held in memory.",
        )?;
        let upstream_duration = Histogram::with_opts(
            HistogramOpts::new(
                "credgate_upstream_duration_seconds",
                "Time the shop took to answer with a response head.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "credgate_upstream_errors_total",
                "Failed upstream requests by kind.",
            ),
            &["kind"],
        )?;
        let tls_handshake_errors = IntCounter::new(
            "credgate_tls_handshake_errors_total",
            "TLS handshakes that failed or timed out.",
        )?;
        let state_backend_errors = IntCounter::new(
            "credgate_state_backend_errors_total",
            "Shared state (Redis) commands that failed or timed out.",
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "credgate_tls_certificate_reloads_total",
                "Certificate reloads by result.",
            ),
            &["result"],
        )?;
        let open_connections = IntGauge::new(
            "credgate_open_connections",
            "Client connections currently open on the proxy listeners.",
        )?;
        let filter_items = IntGaugeVec::new(
            Opts::new("credgate_filter_items", "Items in the loaded filter."),
            &["filter"],
        )?;
        let filter_loaded = GaugeVec::new(
            Opts::new(
                "credgate_filter_loaded_timestamp_seconds",
                "When the serving filter was loaded (Unix time).",
            ),
            &["filter"],
        )?;
        let filter_reloads = IntCounterVec::new(
            Opts::new("credgate_filter_reloads_total", "Filter reloads by result."),
            &["filter", "result"],
        )?;
        registry.register(Box::new(filter_items.clone()))?;
        registry.register(Box::new(filter_loaded.clone()))?;
        registry.register(Box::new(filter_reloads.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(login_attempts.clone()))?;
        registry.register(Box::new(login_outcomes.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(bans.clone()))?;
        registry.register(Box::new(bans_active.clone()))?;
        registry.register(Box::new(tracked_clients.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(tls_handshake_errors.clone()))?;
        registry.register(Box::new(state_backend_errors.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        register_process_collector(registry)?;

        let route = |name: &str, kind: RouteKind| RouteSeries {
            decisions: Decision::ALL.map(|d| requests.with_label_values(&[name, d.as_str()])),
            duration: request_duration.with_label_values(&[kind.as_str()]),
        };
        let inner = Inner {
            passthrough: route("passthrough", RouteKind::Passthrough),
            logins: routes
                .logins()
                .iter()
                .map(|r| route(&r.name, RouteKind::Login))
                .collect(),
            login_attempts: Verdict::ALL.map(|v| login_attempts.with_label_values(&[v.as_str()])),
            login_outcomes: LoginOutcome::ALL.map(|o| {
                Verdict::ALL.map(|v| login_outcomes.with_label_values(&[o.as_str(), v.as_str()]))
            }),
            rate_limited: LimitKind::ALL.map(|l| rate_limited.with_label_values(&[l.as_str()])),
            bans: BanReason::ALL.map(|r| bans.with_label_values(&[r.as_str()])),
            bans_active,
            tracked_clients,
            upstream_duration,
            upstream_errors: UpstreamErrorKind::ALL
                .map(|k| upstream_errors.with_label_values(&[k.as_str()])),
            tls_handshake_errors,
            state_backend_errors,
            tls_reloads: RESULTS.map(|r| tls_reloads.with_label_values(&[r])),
            open_connections,
            filter_items,
            filter_loaded,
            filter_reloads,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Counts a finished request on its route (`None`: pass-through).
    pub fn record_request(
        &self,
        login: Option<&LoginRoute>,
        decision: Decision,
        elapsed: Duration,
    ) {
        let series = match login {
            Some(route) => &self.inner.logins[route.index],
            None => &self.inner.passthrough,
        };
        series.decisions[decision as usize].inc();
        series.duration.observe(elapsed.as_secs_f64());
    }

    pub fn record_login_attempt(&self, verdict: Verdict) {
        self.inner.login_attempts[verdict as usize].inc();
    }

    pub fn record_login_outcome(&self, outcome: LoginOutcome, verdict: Verdict) {
        self.inner.login_outcomes[outcome as usize][verdict as usize].inc();
    }

    pub fn record_rate_limited(&self, limit: LimitKind) {
        self.inner.rate_limited[limit as usize].inc();
    }

    pub fn record_ban(&self, reason: BanReason) {
        self.inner.bans[reason as usize].inc();
    }

    /// The state's size: bans in force, clients tracked.
    pub fn record_state(&self, bans_active: usize, tracked_clients: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.inner.bans_active.set(gauge(bans_active));
        self.inner.tracked_clients.set(gauge(tracked_clients));
    }

    pub fn record_upstream(&self, elapsed: Duration) {
        self.inner.upstream_duration.observe(elapsed.as_secs_f64());
    }

    pub fn record_upstream_error(&self, kind: UpstreamErrorKind) {
        self.inner.upstream_errors[kind as usize].inc();
    }

    pub fn record_tls_handshake_error(&self) {
        self.inner.tls_handshake_errors.inc();
    }

    pub fn record_state_backend_error(&self) {
        self.inner.state_backend_errors.inc();
    }

    pub fn record_tls_reload(&self, ok: bool) {
        self.inner.tls_reloads[usize::from(!ok)].inc();
    }

    /// A filter now serving: its size and when it was loaded.
    pub fn record_filter_loaded(&self, kind: FilterKind, items: u64, at: SystemTime) {
        let filter = [kind.as_str()];
        let items = i64::try_from(items).unwrap_or(i64::MAX);
        self.inner
            .filter_items
            .with_label_values(&filter)
            .set(items);
        let at = at
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.inner.filter_loaded.with_label_values(&filter).set(at);
        for result in RESULTS {
            self.inner
                .filter_reloads
                .with_label_values(&[kind.as_str(), result]);
        }
    }

    pub fn record_filter_reload(&self, kind: FilterKind, ok: bool) {
        let result = RESULTS[usize::from(!ok)];
        self.inner
            .filter_reloads
            .with_label_values(&[kind.as_str(), result])
            .inc();
    }

    /// Counts an open connection until the returned guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.inner.open_connections.inc();
        ConnectionGuard(self.inner.open_connections.clone())
    }
}

const RESULTS: [&str; 2] = ["success", "failure"];

/// Decrements the open-connection gauge when the connection ends, however it
/// ends.
#[derive(Debug)]
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(target_os = "linux")]
fn register_process_collector(registry: &Registry) -> Result<(), prometheus::Error> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))
}

#[cfg(not(target_os = "linux"))]
fn register_process_collector(_: &Registry) -> Result<(), prometheus::Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    /// The tables are indexed by discriminant: `ALL` must list each enum in
    /// declaration order.
    #[test]
    fn all_lists_follow_declaration_order() {
        for (i, d) in Decision::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
        for (i, v) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
        for (i, k) in UpstreamErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for (i, o) in LoginOutcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        for (i, l) in LimitKind::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
        }
        for (i, r) in BanReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn records_show_up_in_the_text_format() {
        let registry = Registry::new();
        let m = Metrics::new(&registry, &Routes::default()).unwrap();
        m.record_request(None, Decision::Allow, Duration::from_millis(3));
        m.record_upstream_error(UpstreamErrorKind::Timeout);
        let guard = m.connection_opened();
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("credgate_requests_total{decision=\"allow\",route=\"passthrough\"} 1")
        );
        assert!(text.contains("credgate_upstream_errors_total{kind=\"timeout\"} 1"));
        assert!(text.contains("credgate_upstream_errors_total{kind=\"connect\"} 0"));
        assert!(text.contains("credgate_open_connections 1"));
        drop(guard);
        assert_eq!(m.inner.open_connections.get(), 0);
    }
}
