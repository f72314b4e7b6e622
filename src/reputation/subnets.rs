//! Escalation from address bans to a network ban (`[suspicion.subnet_ban]`),
//! in this process: per IPv4 network, the addresses banned lately and the
//! logins that succeeded. The Redis backend keeps the same record in the
//! network's hash slot (`escalate.lua`) and takes the same decision.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Instant;

use ipnet::IpNet;
use lru::LruCache;

use crate::config::SubnetBan;
use crate::rate_limit::subnet_of;

/// One network's recent record: about 40 bytes plus 24 per banned address.
#[derive(Debug, Clone, Default)]
struct Record {
    /// Distinct addresses banned, with when; at most `addresses` of them.
    banned: Vec<(IpAddr, Instant)>,
    /// Successful logins in the fixed window that started at `since`.
    since: Option<Instant>,
    successes: u32,
}

/// The records, an LRU map with a hard cap.
#[derive(Debug)]
pub(super) struct Subnets {
    rules: SubnetBan,
    records: LruCache<IpNet, Record>,
}

impl Subnets {
    pub fn new(rules: SubnetBan, cap: usize) -> Self {
        let cap = NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN);
        Self {
            rules,
            records: LruCache::new(cap),
        }
    }

    /// Reloaded rules. The records stay while they key the same networks.
    pub fn set_rules(&mut self, rules: SubnetBan) {
        if rules.ipv4_prefix != self.rules.ipv4_prefix {
            self.records.clear();
        }
        self.rules = rules;
    }

    /// The network an IPv4 `ip` escalates to; IPv6 clients are already
    /// judged by their allocation.
    pub fn network(&self, ip: IpAddr) -> Option<IpNet> {
        ip.is_ipv4()
            .then(|| subnet_of(ip, self.rules.ipv4_prefix, 128))
    }

    /// Counts a successful login from `ip`.
    pub fn succeeded(&mut self, ip: IpAddr, now: Instant) {
        let Some(net) = self.network(ip) else { return };
        let within = self.rules.within();
        let record = self.records.get_or_insert_mut(net, Record::default);
        let stale = |since: Instant| now.saturating_duration_since(since) >= within;
        if record.since.map_or(true, stale) {
            record.since = Some(now);
            record.successes = 0;
        }
        record.successes = record.successes.saturating_add(1);
    }

    /// Records the ban of `ip`; returns its network if the network is to be
    /// banned now: enough distinct addresses banned within the period, and
    /// not a NAT whose customers log in.
    pub fn banned(&mut self, ip: IpAddr, now: Instant) -> Option<IpNet> {
        let net = self.network(ip)?;
        let within = self.rules.within();
        let record = self.records.get_or_insert_mut(net, Record::default);
        let recent = |at: &Instant| now.saturating_duration_since(*at) < within;
        record.banned.retain(|(addr, at)| recent(at) && *addr != ip);
        record.banned.push((ip, now));
        let keep = usize::try_from(self.rules.addresses).unwrap_or(usize::MAX);
        if record.banned.len() > keep {
            record.banned.remove(0);
        }
        let successes = match record.since {
            Some(since) if recent(&since) => record.successes,
            _ => 0,
        };
        let escalate = record.banned.len() >= keep && successes < self.rules.nat_successes;
        escalate.then_some(net)
    }

    /// Forgets a network's record: an operator lifted its ban.
    pub fn forget(&mut self, net: IpNet) {
        self.records.pop(&net);
    }
}
