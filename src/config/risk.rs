//! `[risk]`: what a login of each risk level gets, and the device-trust
//! cookie that lowers it.

use std::path::PathBuf;

use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration};

/// `[risk]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    #[serde(default = "defaults::on_medium_risk")]
    pub on_medium: RiskAction,
    #[serde(default = "defaults::on_high_risk")]
    pub on_high: RiskAction,
    /// The HMAC keys of the device-trust cookie, one a line (hex or base64,
    /// at least 32 bytes): the first signs, the others still verify. Shared
    /// by replicas; without it each process draws a random key, and a
    /// restart forgets every device.
    #[serde(default)]
    pub device_key_file: Option<PathBuf>,
    /// How long a device stays known after its last successful login.
    #[serde(default = "defaults::device_cookie_max_age")]
    pub device_cookie_max_age: HumanDuration,
    /// When a client fingerprint's logins over the `[suspicion]` window
    /// make it a tool: a risk signal for every login it sends. `"off"`
    /// turns the signal off.
    #[serde(
        default = "defaults::tool_fingerprint",
        deserialize_with = "super::protection::switchable"
    )]
    pub tool_fingerprint: Option<ToolFingerprint>,
}

/// A fingerprint is a tool's when at least `min_attempts` of its logins
/// (with a known outcome) came from at least `min_addresses` addresses and
/// at least `failure_ratio` of them failed. Browsers' fingerprints are
/// shared by many customers whose logins mostly succeed.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFingerprint {
    #[serde(default = "defaults::tool_min_attempts")]
    pub min_attempts: u32,
    #[serde(default = "defaults::tool_min_addresses")]
    pub min_addresses: u32,
    #[serde(default = "defaults::failure_ratio")]
    pub failure_ratio: f64,
}

/// What a login of some risk level gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskAction {
    /// Forwarded unchanged.
    Allow,
    /// Forwarded with `Credgate-Risk: medium|high`, so that the shop can ask
    /// for a step-up.
    Annotate,
    /// Refused with 429 and `Retry-After`.
    Throttle,
    /// Refused with 403.
    Block,
}

impl Default for Risk {
    fn default() -> Self {
        Self {
            on_medium: defaults::on_medium_risk(),
            on_high: defaults::on_high_risk(),
            device_key_file: None,
            device_cookie_max_age: defaults::device_cookie_max_age(),
            tool_fingerprint: defaults::tool_fingerprint(),
        }
    }
}

impl Risk {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let max_age = self.device_cookie_max_age.0;
        if max_age.as_secs() == 0 || max_age.as_secs() > u64::from(u32::MAX) {
            return Err(ConfigError::Invalid {
                file: None,
                key: "risk.device_cookie_max_age".into(),
                reason: "must be between 1s and about 136 years".into(),
            });
        }
        if let Some(tool) = &self.tool_fingerprint {
            let invalid = |key: &str, reason: &str| {
                Err(ConfigError::Invalid {
                    file: None,
                    key: format!("risk.tool_fingerprint.{key}"),
                    reason: reason.into(),
                })
            };
            if !(tool.failure_ratio > 0.0 && tool.failure_ratio <= 1.0) {
                return invalid("failure_ratio", "must be above 0 and at most 1");
            }
            if tool.min_attempts == 0 {
                return invalid("min_attempts", "must be at least 1");
            }
        }
        Ok(())
    }
}
