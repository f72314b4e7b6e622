//! Typed Prometheus collectors on an injected [`Registry`].
//!
//! Every label value comes from an enum's `as_str()`, so the set of series is
//! fixed by the type system: no IP, username or password can ever become a
//! label, and cardinality cannot grow with traffic.

mod families;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntGauge, Registry};

use crate::leaked::store::Serving;
use crate::leaked::FilterKind;
use crate::outcome::LoginOutcome;
use crate::rate_limit::LimitKind;
use crate::reputation::BanReason;
use crate::risk::Level;
use crate::route::{LoginRoute, Routes};
use crate::upstream::UpstreamErrorKind;
use crate::verdict::{self, Verdict};
use families::{Attacks, Connections, Filters, Logins, Protection, Requests, Upstream};

/// What the proxy did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDecision {
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

impl RequestDecision {
    pub const ALL: [RequestDecision; 8] = [
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

impl From<verdict::Decision> for RequestDecision {
    fn from(d: verdict::Decision) -> Self {
        match d {
            verdict::Decision::Allow => Self::Allow,
            verdict::Decision::Annotate(_) => Self::Annotate,
            verdict::Decision::Block => Self::Block,
            verdict::Decision::Shadow(_) => Self::Shadow,
        }
    }
}

/// Why credgate answered a request itself instead of forwarding it: the
/// `reason` label of `credgate_refusals_total`. `docs/refusals.md` explains
/// each to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    AmbiguousHost,
    PathControl,
    BodyNotAllowed,
    LoginMethod,
    CredentialInQuery,
    LoginUpgrade,
    RepeatedHeader,
    BodyTooLarge,
    BodyTimeout,
    BodyUnreadable,
    BodyEncoded,
    ContentType,
    Unparsable,
    DuplicateField,
    FieldVariant,
    ControlCharacter,
    FormSyntax,
    Leaked,
    Denied,
    /// A login whose client fingerprint is on the deny list.
    DeniedFingerprint,
    Banned,
    Throttled,
    Unavailable,
    /// A login whose risk level the operator throttles or blocks.
    Risk,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 24] = [
        Self::AmbiguousHost,
        Self::PathControl,
        Self::BodyNotAllowed,
        Self::LoginMethod,
        Self::CredentialInQuery,
        Self::LoginUpgrade,
        Self::RepeatedHeader,
        Self::BodyTooLarge,
        Self::BodyTimeout,
        Self::BodyUnreadable,
        Self::BodyEncoded,
        Self::ContentType,
        Self::Unparsable,
        Self::DuplicateField,
        Self::FieldVariant,
        Self::ControlCharacter,
        Self::FormSyntax,
        Self::Leaked,
        Self::Denied,
        Self::DeniedFingerprint,
        Self::Banned,
        Self::Throttled,
        Self::Unavailable,
        Self::Risk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AmbiguousHost => "ambiguous_host",
            Self::PathControl => "path_control",
            Self::BodyNotAllowed => "body_not_allowed",
            Self::LoginMethod => "login_method",
            Self::CredentialInQuery => "credential_in_query",
            Self::LoginUpgrade => "login_upgrade",
            Self::RepeatedHeader => "repeated_header",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::BodyUnreadable => "body_unreadable",
            Self::BodyEncoded => "body_encoded",
            Self::ContentType => "content_type",
            Self::Unparsable => "unparsable",
            Self::DuplicateField => "duplicate_field",
            Self::FieldVariant => "field_variant",
            Self::ControlCharacter => "control_character",
            Self::FormSyntax => "form_syntax",
            Self::Leaked => "leaked",
            Self::Denied => "denied",
            Self::DeniedFingerprint => "denied_fingerprint",
            Self::Banned => "banned",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Risk => "risk",
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

/// All of credgate's collectors. Cloning is shallow.
///
/// The series a request touches are resolved once, at start: a request
/// increments a counter it already holds instead of hashing label values.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// The collectors, by family: one struct per area of the dashboard.
#[derive(Debug)]
struct Inner {
    requests: Requests,
    logins: Logins,
    protection: Protection,
    upstream: Upstream,
    connections: Connections,
    filters: Filters,
    attacks: Attacks,
}

impl Metrics {
    /// Creates the collectors, with the series of every route in `routes`,
    /// and registers them, with the process collector (CPU, memory, open file
    /// descriptors), on `registry`. Every series exists from the start, at
    /// zero, so dashboards and `rate()` see it before the first event.
    pub fn new(registry: &Registry, routes: &Routes) -> Result<Self, prometheus::Error> {
        let inner = Inner {
            filters: Filters::register(registry)?,
            requests: Requests::register(registry, routes)?,
            logins: Logins::register(registry)?,
            protection: Protection::register(registry)?,
            upstream: Upstream::register(registry)?,
            connections: Connections::register(registry)?,
            attacks: Attacks::register(registry, routes)?,
        };
        families::register_process_collector(registry)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The series of reloaded login routes.
    pub fn set_routes(&self, routes: &Routes) {
        self.inner.requests.set_routes(routes);
        self.inner.attacks.set_routes(routes);
    }

    /// Counts a finished request on its route (`None`: pass-through).
    pub fn record_request(
        &self,
        login: Option<&LoginRoute>,
        decision: RequestDecision,
        elapsed: Duration,
    ) {
        let requests = &self.inner.requests;
        let logins = requests.logins.load();
        // A request in flight across a reload that removed its route has
        // no series left to count in.
        let series = match login.map(|route| logins.get(route.index)) {
            Some(Some(series)) => series,
            Some(None) => return,
            None => &requests.passthrough,
        };
        series.decisions[decision as usize].inc();
        series.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a request credgate answered itself, by why.
    pub fn record_refusal(&self, reason: RefusalReason) {
        self.inner.requests.refusals[reason as usize].inc();
    }

    pub fn record_login_attempt(&self, verdict: Verdict) {
        self.inner.logins.attempts[verdict as usize].inc();
    }

    pub fn record_login_outcome(&self, outcome: LoginOutcome, verdict: Verdict) {
        self.inner.logins.outcomes[outcome as usize][verdict as usize].inc();
    }

    pub fn record_login_risk(&self, level: Level) {
        self.inner.logins.risk[level as usize].inc();
    }

    pub fn record_untrusted_over_budget(&self) {
        self.inner.logins.over_budget.inc();
    }

    pub fn record_rate_limited(&self, limit: LimitKind) {
        self.inner.protection.rate_limited[limit as usize].inc();
    }

    pub fn record_ban(&self, reason: BanReason) {
        self.inner.protection.bans[reason as usize].inc();
    }

    /// The state's size: bans in force, clients tracked.
    pub fn record_state(&self, bans_active: usize, tracked_clients: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let protection = &self.inner.protection;
        protection.bans_active.set(gauge(bans_active));
        protection.tracked_clients.set(gauge(tracked_clients));
    }

    /// Whether the last write of the ban snapshot failed.
    pub fn record_ban_snapshot(&self, failing: bool) {
        let gauge = &self.inner.protection.ban_snapshot_failing;
        gauge.set(i64::from(failing));
    }

    /// Whether each login route (by index) is in attack mode.
    pub fn record_attack_mode(&self, on: impl IntoIterator<Item = bool>) {
        for (gauge, on) in self.inner.attacks.mode.load().iter().zip(on) {
            gauge.set(i64::from(on));
        }
    }

    /// The counter of failed shared-state commands, for the state to count
    /// into as they happen (they are answered by the fallback, so no caller
    /// ever sees them).
    pub fn state_backend_errors(&self) -> IntCounter {
        self.inner.protection.state_backend_errors.clone()
    }

    pub fn record_upstream(&self, elapsed: Duration) {
        self.inner.upstream.duration.observe(elapsed.as_secs_f64());
    }

    pub fn record_upstream_error(&self, kind: UpstreamErrorKind) {
        self.inner.upstream.errors[kind as usize].inc();
    }

    /// The fingerprint table's size.
    pub fn record_fingerprints(&self, seen: usize) {
        let seen = i64::try_from(seen).unwrap_or(i64::MAX);
        self.inner.connections.fingerprints_seen.set(seen);
    }

    pub fn record_tls_handshake_error(&self) {
        self.inner.connections.tls_handshake_errors.inc();
    }

    pub fn record_config_reload(&self, ok: bool) {
        self.inner.connections.config_reloads[usize::from(!ok)].inc();
    }

    pub fn record_tls_reload(&self, ok: bool) {
        self.inner.connections.tls_reloads[usize::from(!ok)].inc();
    }

    /// A filter now serving: its size, when it was loaded and built.
    pub fn record_filter_loaded(&self, serving: &Serving) {
        self.inner.filters.loaded(serving);
    }

    /// The configured age past which a filter is stale, for the alert.
    pub fn record_filter_max_age(&self, kind: FilterKind, age: Duration) {
        self.inner.filters.max_age(kind, age);
    }

    /// The serving certificate's expiry (`None`: not readable from it).
    pub fn record_tls_certificate(&self, not_after: Option<SystemTime>) {
        let seconds = not_after
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.inner.connections.cert_not_after.set(seconds);
    }

    pub fn record_filter_reload(&self, kind: FilterKind, ok: bool) {
        self.inner.filters.reloaded(kind, ok);
    }

    /// Counts an open connection until the returned guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        let open = &self.inner.connections.open;
        open.inc();
        ConnectionGuard(open.clone())
    }

    /// Counts a connection at rest until the guard is dropped.
    pub fn connection_resting(&self) -> ConnectionGuard {
        let resting = &self.inner.connections.resting;
        resting.inc();
        ConnectionGuard(resting.clone())
    }
}

/// Decrements a connection gauge (open, resting) when the connection leaves
/// that state, however it leaves it.
#[derive(Debug)]
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    /// The tables are indexed by discriminant: `ALL` must list each enum in
    /// declaration order.
    #[test]
    fn all_lists_follow_declaration_order() {
        for (i, d) in RequestDecision::ALL.iter().enumerate() {
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
        for (i, l) in Level::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
        }
        for (i, r) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn records_show_up_in_the_text_format() {
        let registry = Registry::new();
        let m = Metrics::new(&registry, &Routes::default()).unwrap();
        m.record_request(None, RequestDecision::Allow, Duration::from_millis(3));
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
        assert_eq!(m.inner.connections.open.get(), 0);
    }

    #[test]
    fn certificate_build_and_filter_ages_show_up_in_the_text_format() {
        let registry = Registry::new();
        let m = Metrics::new(&registry, &Routes::default()).unwrap();
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        m.record_tls_certificate(Some(at(1_900_000_000)));
        m.record_filter_loaded(&Serving {
            kind: FilterKind::Pairs,
            items: 7,
            loaded_at: at(1_800_000_000),
            built_at: at(1_700_000_000),
        });
        m.record_filter_max_age(FilterKind::Pairs, Duration::from_secs(691_200));
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        for line in [
            "credgate_tls_cert_not_after_seconds 1900000000".to_owned(),
            format!("credgate_build_info{{version=\"{version}\"}} 1"),
            "credgate_filter_built_timestamp_seconds{filter=\"pairs\"} 1700000000".to_owned(),
            "credgate_filter_loaded_timestamp_seconds{filter=\"pairs\"} 1800000000".to_owned(),
            "credgate_filter_max_age_seconds{filter=\"pairs\"} 691200".to_owned(),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }
}
