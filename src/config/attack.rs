//! `[attack]`: when a surge of failed logins on a route is an attack.

use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration, Limit};

/// `[attack]`: the attack-mode detector, per login route.
///
/// Attack mode switches on when the route's failed logins per second,
/// averaged over `window`, exceed both `min_failure_rate` and
/// `baseline_factor` times the learned baseline, while more than
/// `failure_ratio` of its answered attempts fail. It switches off once the
/// rate has stayed below `release` times that threshold for `hold`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attack {
    /// Off: attack mode only changes when an operator forces it.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Failed logins per second below which a route is never under attack,
    /// whatever its baseline: the floor under a quiet route's threshold.
    #[serde(default = "defaults::attack_min_failure_rate")]
    pub min_failure_rate: f64,
    /// How many times its usual failure rate a route must see.
    #[serde(default = "defaults::attack_baseline_factor")]
    pub baseline_factor: f64,
    /// The share of answered attempts that must fail: a sale that brings
    /// many more logins, mostly successful, is not an attack.
    #[serde(default = "defaults::attack_failure_ratio")]
    pub failure_ratio: f64,
    /// The time constant of the current rates (an exponential average).
    #[serde(default = "defaults::attack_window")]
    pub window: HumanDuration,
    /// The time constant of the baseline, learned only while attack mode
    /// is off, so that an attack never teaches the detector that it is
    /// normal.
    #[serde(default = "defaults::attack_baseline_window")]
    pub baseline_window: HumanDuration,
    /// The share of the switch-on threshold under which the attack counts
    /// as over: the gap between the two is the hysteresis.
    #[serde(default = "defaults::attack_release")]
    pub release: f64,
    /// How long the rate must stay under the release threshold before
    /// attack mode switches off.
    #[serde(default = "defaults::attack_hold")]
    pub hold: HumanDuration,
    /// While a route is under attack, logins from devices without a valid
    /// device cookie share this budget (per replica); beyond it they are
    /// high risk (a step-up on defaults), so that a campaign's volume
    /// cannot get past the shop's step-up; returning customers are not
    /// charged.
    /// `"off"` turns it off.
    #[serde(
        default = "defaults::untrusted_budget",
        deserialize_with = "super::protection::switchable"
    )]
    pub untrusted_budget: Option<Limit>,
}

impl Attack {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                file: None,
                key: format!("attack.{key}"),
                reason: reason.into(),
            })
        };
        if !(self.min_failure_rate.is_finite() && self.min_failure_rate > 0.0) {
            return invalid("min_failure_rate", "must be above 0");
        }
        if !(self.baseline_factor.is_finite() && self.baseline_factor >= 1.0) {
            return invalid("baseline_factor", "must be at least 1");
        }
        if !(self.failure_ratio >= 0.0 && self.failure_ratio < 1.0) {
            return invalid("failure_ratio", "must be at least 0 and below 1");
        }
        if !(self.release > 0.0 && self.release <= 1.0) {
            return invalid("release", "must be above 0 and at most 1");
        }
        if self.window.0.is_zero() {
            return invalid("window", "must be greater than zero");
        }
        if self.baseline_window.0 <= self.window.0 {
            return invalid("baseline_window", "must be longer than attack.window");
        }
        Ok(())
    }
}

impl Default for Attack {
    fn default() -> Self {
        Self {
            enabled: true,
            min_failure_rate: defaults::attack_min_failure_rate(),
            baseline_factor: defaults::attack_baseline_factor(),
            failure_ratio: defaults::attack_failure_ratio(),
            window: defaults::attack_window(),
            baseline_window: defaults::attack_baseline_window(),
            release: defaults::attack_release(),
            hold: defaults::attack_hold(),
            untrusted_budget: defaults::untrusted_budget(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(toml: &str) -> String {
        match toml::from_str::<Attack>(toml) {
            Ok(attack) => attack.validate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_attack_table_takes_defaults_and_checks_its_values() {
        let attack: Attack = toml::from_str("").unwrap();
        assert!(attack.enabled);
        assert_eq!(attack.min_failure_rate, 2.0);
        assert_eq!(attack.hold.0, std::time::Duration::from_secs(120));
        assert!(attack.validate().is_ok());

        for (toml, key) in [
            ("min_failure_rate = 0.0", "attack.min_failure_rate"),
            ("baseline_factor = 0.5", "attack.baseline_factor"),
            ("failure_ratio = 1.0", "attack.failure_ratio"),
            ("release = 0.0", "attack.release"),
            ("window = \"0s\"", "attack.window"),
            ("window = \"2h\"", "attack.baseline_window"),
        ] {
            let e = error(toml);
            assert!(e.contains(key), "{toml}: {e}");
        }
        assert!(error("threshold = 3").contains("threshold"));
    }
}
