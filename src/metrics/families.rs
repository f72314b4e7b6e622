//! The collectors, one struct per family, each created and registered in one
//! place. Label values come from the enums' `as_str()`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use super::{RefusalReason, RequestDecision, RouteKind};
use crate::leaked::store::Serving;
use crate::leaked::FilterKind;
use crate::outcome::LoginOutcome;
use crate::rate_limit::LimitKind;
use crate::reputation::BanReason;
use crate::risk::Level;
use crate::route::Routes;
use crate::upstream::UpstreamErrorKind;
use crate::verdict::Verdict;

// Latency buckets from 0.5 ms to 30 s: a proxy hop is sub-millisecond, a slow
// shop is seconds, and both ends need resolution.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const RESULTS: [&str; 2] = ["success", "failure"];

/// Registers `collector` and hands it back.
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, prometheus::Error> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn counters(name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

/// `credgate_requests_total` and `credgate_request_duration_seconds`.
#[derive(Debug)]
pub(super) struct Requests {
    pub passthrough: RouteSeries,
    /// By route index; swapped when a reload changes the login routes.
    pub logins: ArcSwap<Vec<RouteSeries>>,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// `credgate_refusals_total`, by reason.
    pub refusals: [IntCounter; RefusalReason::ALL.len()],
}

/// One route's series: a request counter per decision and its latency.
#[derive(Debug)]
pub(super) struct RouteSeries {
    pub decisions: [IntCounter; RequestDecision::ALL.len()],
    pub duration: Histogram,
}

impl Requests {
    pub fn register(registry: &Registry, routes: &Routes) -> Result<Self, prometheus::Error> {
        let requests = register(
            registry,
            counters(
                "credgate_requests_total",
                "Requests by route and decision.",
                &["route", "decision"],
            )?,
        )?;
        let duration = register(
            registry,
            HistogramVec::new(
                latency(
                    "credgate_request_duration_seconds",
                    "Time from request head to response head, by kind of route.",
                ),
                &["route_kind"],
            )?,
        )?;
        let refusals = register(
            registry,
            counters(
                "credgate_refusals_total",
                "Requests credgate answered itself instead of forwarding, by reason.",
                &["reason"],
            )?,
        )?;
        let logins = logins(&requests, &duration, routes);
        Ok(Self {
            passthrough: series(&requests, &duration, "passthrough", RouteKind::Passthrough),
            logins: ArcSwap::from_pointee(logins),
            refusals: RefusalReason::ALL.map(|r| refusals.with_label_values(&[r.as_str()])),
            requests,
            duration,
        })
    }

    /// The series of reloaded login routes. A removed route's counters stay
    /// exported, as counters do, until the next restart.
    pub fn set_routes(&self, routes: &Routes) {
        let logins = logins(&self.requests, &self.duration, routes);
        self.logins.store(Arc::new(logins));
    }
}

fn logins(requests: &IntCounterVec, duration: &HistogramVec, routes: &Routes) -> Vec<RouteSeries> {
    let logins = routes.logins().iter();
    logins
        .map(|r| series(requests, duration, &r.name, RouteKind::Login))
        .collect()
}

fn series(
    requests: &IntCounterVec,
    duration: &HistogramVec,
    name: &str,
    kind: RouteKind,
) -> RouteSeries {
    RouteSeries {
        decisions: RequestDecision::ALL.map(|d| requests.with_label_values(&[name, d.as_str()])),
        duration: duration.with_label_values(&[kind.as_str()]),
    }
}

/// Login attempts by verdict, and the shop's answers to them.
#[derive(Debug)]
pub(super) struct Logins {
    pub attempts: [IntCounter; Verdict::ALL.len()],
    /// By outcome, then verdict.
    pub outcomes: [[IntCounter; Verdict::ALL.len()]; LoginOutcome::ALL.len()],
    /// `credgate_login_risk_total`, by level.
    pub risk: [IntCounter; Level::ALL.len()],
    /// `credgate_untrusted_budget_exceeded_total`.
    pub over_budget: IntCounter,
}

impl Logins {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let attempts = register(
            registry,
            counters(
                "credgate_login_attempts_total",
                "Login attempts whose credentials were checked, by verdict.",
                &["verdict"],
            )?,
        )?;
        let outcomes = register(
            registry,
            counters(
                "credgate_login_outcomes_total",
                "Forwarded login attempts by the shop's answer and credgate's verdict.",
                &["outcome", "verdict"],
            )?,
        )?;
        let risk = register(
            registry,
            counters(
                "credgate_login_risk_total",
                "Login attempts whose risk was assessed (those the leaked checks did not block), by level.",
                &["level"],
            )?,
        )?;
        let over_budget = register(
            registry,
            IntCounter::new(
                "credgate_untrusted_budget_exceeded_total",
                "Logins from unknown devices under attack raised to high risk because [attack] untrusted_budget was spent.",
            )?,
        )?;
        Ok(Self {
            risk: Level::ALL.map(|l| risk.with_label_values(&[l.as_str()])),
            over_budget,
            attempts: Verdict::ALL.map(|v| attempts.with_label_values(&[v.as_str()])),
            outcomes: LoginOutcome::ALL.map(|o| {
                Verdict::ALL.map(|v| outcomes.with_label_values(&[o.as_str(), v.as_str()]))
            }),
        })
    }
}

/// Limits, bans and the state behind them.
#[derive(Debug)]
pub(super) struct Protection {
    pub rate_limited: [IntCounter; LimitKind::ALL.len()],
    pub bans: [IntCounter; BanReason::ALL.len()],
    pub bans_active: IntGauge,
    pub tracked_clients: IntGauge,
    pub state_backend_errors: IntCounter,
    pub ban_snapshot_failing: IntGauge,
}

impl Protection {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rate_limited = register(
            registry,
            counters(
                "credgate_rate_limited_total",
                "Attempts refused by a rate limit.",
                &["limit"],
            )?,
        )?;
        let bans = register(
            registry,
            counters(
                "credgate_bans_total",
                "Bans imposed, by reason.",
                &["reason"],
            )?,
        )?;
        Ok(Self {
            rate_limited: LimitKind::ALL.map(|l| rate_limited.with_label_values(&[l.as_str()])),
            bans: BanReason::ALL.map(|r| bans.with_label_values(&[r.as_str()])),
            bans_active: register(
                registry,
                IntGauge::new("credgate_bans_active", "Bans in force.")?,
            )?,
            tracked_clients: register(
                registry,
                IntGauge::new(
                    "credgate_tracked_clients",
                    "Clients whose suspicion state is held in memory.",
                )?,
            )?,
            state_backend_errors: register(
                registry,
                IntCounter::new(
                    "credgate_state_backend_errors_total",
                    "Shared state (Redis) commands that failed or timed out.",
                )?,
            )?,
            ban_snapshot_failing: register(
                registry,
                IntGauge::new(
                    "credgate_ban_snapshot_failing",
                    "1 while the local ban snapshot (state.ban_snapshot) cannot be written.",
                )?,
            )?,
        })
    }
}

/// The shop's answers: latency and failures.
#[derive(Debug)]
pub(super) struct Upstream {
    pub duration: Histogram,
    pub errors: [IntCounter; UpstreamErrorKind::ALL.len()],
}

impl Upstream {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let duration = register(
            registry,
            Histogram::with_opts(latency(
                "credgate_upstream_duration_seconds",
                "Time the shop took to answer with a response head.",
            ))?,
        )?;
        let errors = register(
            registry,
            counters(
                "credgate_upstream_errors_total",
                "Failed upstream requests by kind.",
                &["kind"],
            )?,
        )?;
        Ok(Self {
            duration,
            errors: UpstreamErrorKind::ALL.map(|k| errors.with_label_values(&[k.as_str()])),
        })
    }
}

/// Client connections, their TLS handshakes and fingerprints, and
/// certificate reloads.
#[derive(Debug)]
pub(super) struct Connections {
    pub open: IntGauge,
    pub resting: IntGauge,
    pub tls_handshake_errors: IntCounter,
    pub tls_reloads: [IntCounter; 2],
    /// `credgate_config_reloads_total`, by result.
    pub config_reloads: [IntCounter; 2],
    pub cert_not_after: Gauge,
    /// A count only: a fingerprint is never a label.
    pub fingerprints_seen: IntGauge,
}

impl Connections {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let config_reloads = register(
            registry,
            counters(
                "credgate_config_reloads_total",
                "Configuration file reloads by result (a refused file changes nothing).",
                &["result"],
            )?,
        )?;
        let tls_reloads = register(
            registry,
            counters(
                "credgate_tls_certificate_reloads_total",
                "Certificate reloads by result.",
                &["result"],
            )?,
        )?;
        let build_info = register(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "credgate_build_info",
                    "Always 1; the running version as a label.",
                ),
                &["version"],
            )?,
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Self {
            cert_not_after: register(
                registry,
                Gauge::new(
                    "credgate_tls_cert_not_after_seconds",
                    "When the serving certificate expires (Unix time).",
                )?,
            )?,
            tls_handshake_errors: register(
                registry,
                IntCounter::new(
                    "credgate_tls_handshake_errors_total",
                    "TLS handshakes that failed or timed out.",
                )?,
            )?,
            tls_reloads: RESULTS.map(|r| tls_reloads.with_label_values(&[r])),
            config_reloads: RESULTS.map(|r| config_reloads.with_label_values(&[r])),
            fingerprints_seen: register(
                registry,
                IntGauge::new(
                    "credgate_fingerprints_seen",
                    "Distinct client fingerprints (JA4) tracked in the fingerprint table.",
                )?,
            )?,
            open: register(
                registry,
                IntGauge::new(
                    "credgate_open_connections",
                    "Client connections currently open on the proxy listeners.",
                )?,
            )?,
            resting: register(
                registry,
                IntGauge::new(
                    "credgate_resting_connections",
                    "Open HTTP/1 client connections idle between requests, holding no HTTP buffers.",
                )?,
            )?,
        })
    }
}

/// The leaked-credential filters. They load and reload rarely: their series
/// are looked up by label when it happens, and exist only for the filters
/// configured.
#[derive(Debug)]
pub(super) struct Filters {
    items: IntGaugeVec,
    loaded_at: GaugeVec,
    built_at: GaugeVec,
    max_age: GaugeVec,
    reloads: IntCounterVec,
}

impl Filters {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(Self {
            items: register(
                registry,
                IntGaugeVec::new(
                    Opts::new("credgate_filter_items", "Items in the loaded filter."),
                    &["filter"],
                )?,
            )?,
            loaded_at: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "credgate_filter_loaded_timestamp_seconds",
                        "When the serving filter was loaded (Unix time).",
                    ),
                    &["filter"],
                )?,
            )?,
            built_at: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "credgate_filter_built_timestamp_seconds",
                        "When build-filter wrote the serving filter (Unix time).",
                    ),
                    &["filter"],
                )?,
            )?,
            max_age: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "credgate_filter_max_age_seconds",
                        "The configured age past which a filter is stale ([leaked] max_filter_age).",
                    ),
                    &["filter"],
                )?,
            )?,
            reloads: register(
                registry,
                counters(
                    "credgate_filter_reloads_total",
                    "Filter reloads by result.",
                    &["filter", "result"],
                )?,
            )?,
        })
    }

    pub fn loaded(&self, serving: &Serving) {
        let kind = serving.kind;
        let filter = [kind.as_str()];
        let items = i64::try_from(serving.items).unwrap_or(i64::MAX);
        self.items.with_label_values(&filter).set(items);
        let unix = |at: SystemTime| {
            at.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        (self.loaded_at.with_label_values(&filter)).set(unix(serving.loaded_at));
        (self.built_at.with_label_values(&filter)).set(unix(serving.built_at));
        for result in RESULTS {
            self.reloads.with_label_values(&[kind.as_str(), result]);
        }
    }

    pub fn max_age(&self, kind: FilterKind, age: Duration) {
        (self.max_age.with_label_values(&[kind.as_str()])).set(age.as_secs_f64());
    }

    pub fn reloaded(&self, kind: FilterKind, ok: bool) {
        let result = RESULTS[usize::from(!ok)];
        self.reloads
            .with_label_values(&[kind.as_str(), result])
            .inc();
    }
}

/// `credgate_attack_mode`, by login route index.
#[derive(Debug)]
pub(super) struct Attacks {
    pub mode: ArcSwap<Vec<IntGauge>>,
    family: IntGaugeVec,
}

impl Attacks {
    pub fn register(registry: &Registry, routes: &Routes) -> Result<Self, prometheus::Error> {
        let mode = register(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "credgate_attack_mode",
                    "1 while the login route is in attack mode (detected or forced), else 0.",
                ),
                &["route"],
            )?,
        )?;
        Ok(Self {
            mode: ArcSwap::from_pointee(gauges(&mode, routes)),
            family: mode,
        })
    }

    /// The gauges of reloaded login routes; a removed route's reads 0.
    pub fn set_routes(&self, routes: &Routes) {
        for gauge in self.mode.load().iter() {
            gauge.set(0);
        }
        self.mode.store(Arc::new(gauges(&self.family, routes)));
    }
}

fn gauges(family: &IntGaugeVec, routes: &Routes) -> Vec<IntGauge> {
    let logins = routes.logins().iter();
    logins
        .map(|r| family.with_label_values(&[&r.name]))
        .collect()
}

#[cfg(target_os = "linux")]
pub(super) fn register_process_collector(registry: &Registry) -> Result<(), prometheus::Error> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))
}

#[cfg(not(target_os = "linux"))]
pub(super) fn register_process_collector(_: &Registry) -> Result<(), prometheus::Error> {
    Ok(())
}
