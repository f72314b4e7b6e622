//! `[suspicion.subnet_ban]`: when bans of several addresses of one IPv4
//! network become a ban of the network.

use std::time::Duration;

use serde::Deserialize;

use super::{defaults, ConfigError, HumanDuration};

/// Escalation to a network ban: `addresses` distinct addresses of one
/// `ipv4_prefix` network banned `within` this long ban the network, unless
/// at least `nat_successes` logins from it succeeded in that time (a NAT of
/// real customers, whose attackers are banned one address at a time).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetBan {
    #[serde(default = "defaults::ipv4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "defaults::subnet_ban_addresses")]
    pub addresses: u32,
    #[serde(default = "defaults::subnet_ban_within")]
    pub within: HumanDuration,
    #[serde(default = "defaults::subnet_ban_nat_successes")]
    pub nat_successes: u32,
}

/// The most addresses a network's record keeps.
pub const MAX_ADDRESSES: u32 = 64;

impl Default for SubnetBan {
    fn default() -> Self {
        Self {
            ipv4_prefix: defaults::ipv4_prefix(),
            addresses: defaults::subnet_ban_addresses(),
            within: defaults::subnet_ban_within(),
            nat_successes: defaults::subnet_ban_nat_successes(),
        }
    }
}

impl SubnetBan {
    /// How long a network's record of bans and successes lasts.
    pub fn within(&self) -> Duration {
        self.within.0
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                file: None,
                key: format!("suspicion.subnet_ban.{key}"),
                reason: reason.into(),
            })
        };
        if !(8..=31).contains(&self.ipv4_prefix) {
            return invalid("ipv4_prefix", "must be between 8 and 31");
        }
        if !(2..=MAX_ADDRESSES).contains(&self.addresses) {
            return invalid("addresses", "must be between 2 and 64");
        }
        if self.within.0.is_zero() {
            return invalid("within", "must be greater than zero");
        }
        if self.nat_successes == 0 {
            return invalid("nat_successes", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Suspicion;

    fn error_of(toml: &str) -> String {
        let suspicion: Suspicion = toml::from_str(toml).unwrap();
        suspicion.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_switch_and_bounds() {
        let suspicion: Suspicion = toml::from_str("").unwrap();
        assert_eq!(suspicion.ipv6_prefix, 64);
        let rules = suspicion.subnet_ban.unwrap();
        assert_eq!((rules.ipv4_prefix, rules.addresses), (24, 3));
        assert_eq!((rules.within().as_secs(), rules.nat_successes), (3600, 10));
        let off: Suspicion = toml::from_str("subnet_ban = \"off\"").unwrap();
        assert!(off.subnet_ban.is_none());

        let e = error_of("ipv6_prefix = 0");
        assert!(e.contains("suspicion.ipv6_prefix"), "{e}");
        let e = error_of("subnet_ban = { addresses = 1 }");
        assert!(e.contains("suspicion.subnet_ban.addresses"), "{e}");
        let e = error_of("subnet_ban = { ipv4_prefix = 32 }");
        assert!(e.contains("suspicion.subnet_ban.ipv4_prefix"), "{e}");
        let e = error_of("subnet_ban = { within = \"0s\" }");
        assert!(e.contains("suspicion.subnet_ban.within"), "{e}");
    }
}
