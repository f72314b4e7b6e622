//! The pipeline's stages from a configuration: built at start, and again by
//! each reload, which keeps the long-lived parts of the running ones.

use std::sync::Arc;

use anyhow::Context as _;

use crate::attack::AttackMode;
use crate::client_ip::TrustedProxies;
use crate::config::Config;
use crate::device::DeviceKeys;
use crate::fingerprint::{
    FingerprintLists, FingerprintReputation, FingerprintSource, Fingerprints,
};
use crate::leaked::LeakedFilters;
use crate::logging::access::AccessLog;
use crate::metrics::Metrics;
use crate::proxy::{LoginPolicy, Stages};
use crate::rate_limit::Budget;
use crate::respond::BlockPage;
use crate::risk::{self, Risk, RiskMemory};
use crate::route::Routes;
use crate::state::State;
use crate::upstream::Upstream;
use crate::verdict::Policy;

/// What outlives a reload: handles whose state is worth keeping (the
/// upstream pool, the filters, the limit counters, suspicion and bans,
/// attack mode, the fingerprint table, the risk memory) or that others
/// hold too. The ones a reload changes are changed in place.
pub(super) struct Kept {
    pub upstream: Upstream,
    pub fingerprints: Fingerprints,
    pub leaked: LeakedFilters,
    pub state: State,
    pub attack: AttackMode,
    pub metrics: Metrics,
    pub memory: Arc<RiskMemory>,
    /// The running device keys, kept when no `device_key_file` is set: a
    /// new random key would void every device cookie handed out.
    pub device: Option<DeviceKeys>,
}

/// The stages for `config` around `kept`.
pub(super) fn build(config: &Config, kept: Kept) -> anyhow::Result<Stages> {
    let s = &config.server;
    let risk = risk_stage(config, &kept)?;
    Ok(Stages {
        upstream: kept.upstream,
        trusted: TrustedProxies::new(s.trusted_proxies.clone()),
        fingerprint: FingerprintSource::new(s.fingerprint_header.clone().map(|h| h.0)),
        fingerprints: kept.fingerprints,
        routes: routes(config)?,
        leaked: kept.leaked,
        state: kept.state,
        login: login_policy(config)?,
        risk,
        attack: kept.attack,
        metrics: kept.metrics,
        access: AccessLog::new(&config.log),
    })
}

/// The stages for a reloaded `config` around the long-lived parts of
/// `running`. Builds only: nothing changes until the reload applies them.
/// The risk memory is new (empty) when its window or subnet prefixes
/// changed, and so is the untrusted-device budget. The device key file is
/// read again (a rotation); without one, the running keys stay.
pub fn rebuild(config: &Config, running: &Stages) -> anyhow::Result<Stages> {
    let memory = &running.risk.memory;
    let kept = Kept {
        upstream: running.upstream.clone(),
        fingerprints: running.fingerprints.clone(),
        leaked: running.leaked.clone(),
        state: running.state.clone(),
        attack: running.attack.clone(),
        metrics: running.metrics.clone(),
        memory: match memory.fits(config) {
            true => memory.clone(),
            false => Arc::new(RiskMemory::new(config)),
        },
        device: match &config.risk.device_key_file {
            Some(_) => None,
            None => Some(running.risk.device.clone()),
        },
    };
    build(config, kept)
}

/// The login routes, and the methods that may carry a body elsewhere.
pub(super) fn routes(config: &Config) -> anyhow::Result<Routes> {
    let allow_body_on = config.server.allow_body_on.iter().map(|m| m.0.clone());
    Ok(Routes::new(&config.login)?.allow_body_on(allow_body_on))
}

/// The risk stage, reading the routes' attack mode from the detector.
fn risk_stage(config: &Config, kept: &Kept) -> anyhow::Result<Risk> {
    let s = &config.suspicion;
    let max_age = config.risk.device_cookie_max_age.0;
    let device = match &kept.device {
        Some(running) => running.clone().with_max_age(max_age),
        None => DeviceKeys::from_config(&config.risk).context("key `risk.device_key_file`")?,
    };
    Ok(Risk {
        policy: risk::Policy::new(&config.risk),
        untrusted: config.attack.untrusted_budget.as_ref().map(Budget::new),
        device,
        memory: kept.memory.clone(),
        shared: kept.state.clone(),
        attack: Arc::new(kept.attack.clone()),
        fingerprint: FingerprintReputation::new(
            kept.fingerprints.clone(),
            config.risk.tool_fingerprint,
            FingerprintLists::new(&s.fingerprint_allowlist, &s.fingerprint_denylist),
        ),
    })
}

fn login_policy(config: &Config) -> anyhow::Result<LoginPolicy> {
    let leaked = &config.leaked;
    let block_page = match &leaked.block_body_file {
        Some(path) => BlockPage::load(path)
            .with_context(|| format!("leaked.block_body_file: cannot read {}", path.display()))?,
        None => BlockPage::default(),
    };
    Ok(LoginPolicy {
        verdicts: Policy {
            on_leaked_pair: leaked.on_leaked_pair,
            on_leaked_password: leaked.on_leaked_password,
        },
        annotate_header: leaked.annotate_header.0.clone(),
        on_unparsed: leaked.on_unparsed,
        block_page,
        body_read_timeout: config.server.body_read_timeout.0,
    })
}
