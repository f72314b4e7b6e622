//! Escalation from address bans to a network ban, shared: each network's
//! record of banned addresses and successful logins lives in its own hash
//! slot beside its ban, and one script (`escalate.lua`) records a ban and
//! decides, atomically. So whichever replica bans the last address, the
//! decision is the same, and a network is banned once.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{millis, BackendError, Redis};
use crate::rate_limit::subnet_of;
use crate::reputation::BanReason;

impl Redis {
    /// The network an IPv4 `ip` escalates to, if escalation is on.
    fn escalation_net(&self, ip: IpAddr) -> Option<IpNet> {
        let rules = self.policy.load().subnet_ban?;
        ip.is_ipv4().then(|| subnet_of(ip, rules.ipv4_prefix, 128))
    }

    /// Counts a successful login in the record of `ip`'s network.
    pub(super) async fn count_success(&self, ip: IpAddr) -> Result<(), BackendError> {
        let (Some(net), Some(rules)) = (self.escalation_net(ip), self.policy.load().subnet_ban)
        else {
            return Ok(());
        };
        let mut call = self.scripts.escalate.prepare_invoke();
        call.key(self.keys.escalation(net))
            .key(self.keys.ban(net))
            .arg("success")
            .arg(millis(rules.within()));
        let _: (u64, u64) = self.invoke(&call).await?;
        Ok(())
    }

    /// Records the ban of `ip` (ending at `until`, Redis milliseconds);
    /// returns its network and the end of the network's ban if this ban
    /// escalated.
    pub(super) async fn escalate(
        &self,
        ip: IpAddr,
        until: u64,
    ) -> Result<Option<(IpNet, u64, u64)>, BackendError> {
        let (Some(net), Some(rules)) = (self.escalation_net(ip), self.policy.load().subnet_ban)
        else {
            return Ok(None);
        };
        let reason = BanReason::SubnetEscalation;
        let mut call = self.scripts.escalate.prepare_invoke();
        call.key(self.keys.escalation(net))
            .key(self.keys.ban(net))
            .arg("ban")
            .arg(millis(rules.within()))
            .arg(ip.to_string())
            .arg(rules.addresses)
            .arg(rules.nat_successes)
            .arg(until)
            .arg(reason.as_str());
        let (now, net_until): (u64, u64) = self.invoke(&call).await?;
        if net_until == 0 {
            return Ok(None);
        }
        self.index_add(net, net_until, std::time::Duration::ZERO, reason.as_str())
            .await?;
        // This replica sees the network ban at once on a cluster too.
        self.lock_lengths().read = None;
        Ok(Some((net, now, net_until)))
    }
}
