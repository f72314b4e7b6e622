//! Typed Prometheus collectors on an injected [`Registry`].
//!
//! Every label value comes from an enum's `as_str()`, so the set of series is
//! fixed by the type system: no IP, username or password can ever become a
//! label, and cardinality cannot grow with traffic.

use std::time::Duration;

use crate::route::Routes;
use crate::verdict::{self, Verdict};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// What the proxy did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded to the shop unchanged.
    Allow,
    /// Forwarded with the annotation header.
    Annotate,
    /// Refused with 403.
    Block,
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
    pub const ALL: [Decision; 7] = [
        Self::Allow,
        Self::Annotate,
        Self::Block,
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
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

/// All of credgate's collectors. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: IntCounterVec,
    login_attempts: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: Histogram,
    upstream_errors: IntCounterVec,
    tls_handshake_errors: IntCounter,
    tls_reloads: IntCounterVec,
    open_connections: IntGauge,
}

// Latency buckets from 0.5 ms to 30 s: a proxy hop is sub-millisecond, a slow
// shop is seconds, and both ends need resolution.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Creates the collectors and registers them, with the process collector
    /// (CPU, memory, open file descriptors), on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new("credgate_requests_total", "Requests by route and decision."),
                &["route", "decision"],
            )?,
            login_attempts: IntCounterVec::new(
                Opts::new(
                    "credgate_login_attempts_total",
                    "Login attempts whose credentials were checked, by verdict.",
                ),
                &["verdict"],
            )?,
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "credgate_request_duration_seconds",
                    "Time from request head to response head, by kind of route.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route_kind"],
            )?,
            upstream_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "credgate_upstream_duration_seconds",
                    "Time the shop took to answer with a response head.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            upstream_errors: IntCounterVec::new(
                Opts::new(
                    "credgate_upstream_errors_total",
                    "Failed upstream requests by kind.",
                ),
                &["kind"],
            )?,
            tls_handshake_errors: IntCounter::new(
                "credgate_tls_handshake_errors_total",
                "TLS handshakes that failed or timed out.",
            )?,
            tls_reloads: IntCounterVec::new(
                Opts::new(
                    "credgate_tls_certificate_reloads_total",
                    "Certificate reloads by result.",
                ),
                &["result"],
            )?,
            open_connections: IntGauge::new(
                "credgate_open_connections",
                "Client connections currently open on the proxy listeners.",
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.login_attempts.clone()))?;
        registry.register(Box::new(m.request_duration.clone()))?;
        registry.register(Box::new(m.upstream_duration.clone()))?;
        registry.register(Box::new(m.upstream_errors.clone()))?;
        registry.register(Box::new(m.tls_handshake_errors.clone()))?;
        registry.register(Box::new(m.tls_reloads.clone()))?;
        registry.register(Box::new(m.open_connections.clone()))?;
        register_process_collector(registry)?;
        m.initialise_series();
        Ok(m)
    }

    /// Creates every series at zero so that dashboards and `rate()` see them
    /// before the first event.
    fn initialise_series(&self) {
        for kind in [
            UpstreamErrorKind::Connect,
            UpstreamErrorKind::Timeout,
            UpstreamErrorKind::Protocol,
        ] {
            self.upstream_errors.with_label_values(&[kind.as_str()]);
        }
        for result in ["success", "failure"] {
            self.tls_reloads.with_label_values(&[result]);
        }
        for decision in [Decision::Allow, Decision::Reject, Decision::UpstreamError] {
            self.requests
                .with_label_values(&[RouteKind::Passthrough.as_str(), decision.as_str()]);
        }
        for verdict in Verdict::ALL {
            self.login_attempts.with_label_values(&[verdict.as_str()]);
        }
    }

    /// Creates the series of each login route at zero.
    pub fn register_routes(&self, routes: &Routes) {
        for route in routes.logins() {
            for decision in Decision::ALL {
                self.requests
                    .with_label_values(&[route.name.as_str(), decision.as_str()]);
            }
        }
        if !routes.logins().is_empty() {
            self.request_duration
                .with_label_values(&[RouteKind::Login.as_str()]);
        }
    }

    /// `route` is a login route's name or `passthrough`: a set fixed by the
    /// configuration.
    pub fn record_request(
        &self,
        route: &str,
        kind: RouteKind,
        decision: Decision,
        elapsed: Duration,
    ) {
        self.requests
            .with_label_values(&[route, decision.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[kind.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_login_attempt(&self, verdict: Verdict) {
        self.login_attempts
            .with_label_values(&[verdict.as_str()])
            .inc();
    }

    pub fn record_upstream(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }

    pub fn record_upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    pub fn record_tls_handshake_error(&self) {
        self.tls_handshake_errors.inc();
    }

    pub fn record_tls_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.tls_reloads.with_label_values(&[result]).inc();
    }

    /// Counts an open connection until the returned guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.open_connections.inc();
        ConnectionGuard(self.open_connections.clone())
    }
}

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

    #[test]
    fn records_show_up_in_the_text_format() {
        let registry = Registry::new();
        let m = Metrics::new(&registry).unwrap();
        m.record_request(
            "passthrough",
            RouteKind::Passthrough,
            Decision::Allow,
            Duration::from_millis(3),
        );
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
        assert_eq!(m.open_connections.get(), 0);
    }
}
