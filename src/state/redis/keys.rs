//! Key names. Every key starts with the configured `key_prefix` and carries
//! one hash tag, so that each script touches the keys of one hash slot: a
//! client's keys share `{ip:ADDR}` (an IPv6 client's suspicion and ban
//! `{ip:NET}`, its network of `ipv6_prefix`), a network's `{net:NET}`, a
//! username's `{user:HASH}`, a fingerprint's `{fp:JA4}`; the global limit,
//! the ban index and the username hash key
//! have a slot each.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::reputation::is_suspect;

/// The key names under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `key_prefix`, as configured (`credgate:` by default).
    prefix: String,
    /// `[suspicion] ipv6_prefix`: an IPv6 client's network.
    ipv6_prefix: u8,
}

impl Keys {
    pub fn new(key_prefix: &str, ipv6_prefix: u8) -> Self {
        Self {
            prefix: key_prefix.to_owned(),
            ipv6_prefix,
        }
    }

    /// The GCRA key of a per-address limit (`limit` or `all`).
    pub fn ip(&self, ip: IpAddr, what: &str) -> String {
        format!("{}{{ip:{ip}}}:{what}", self.prefix)
    }

    /// The suspicion of a client: an address, or an IPv6 client's network.
    pub fn suspicion(&self, client: IpNet) -> String {
        format!("{}{{ip:{}}}:suspicion", self.prefix, member(client))
    }

    /// A network's record of its banned addresses and successful logins,
    /// beside its ban.
    pub fn escalation(&self, net: IpNet) -> String {
        format!("{}{{net:{}}}:escalation", self.prefix, net.trunc())
    }

    pub fn net_limit(&self, net: IpNet) -> String {
        format!("{}{{net:{net}}}:limit", self.prefix)
    }

    /// A network's key other than its limit and ban (`risk`).
    pub fn net(&self, net: IpNet, what: &str) -> String {
        format!("{}{{net:{net}}}:{what}", self.prefix)
    }

    /// A username's key other than its limit (`seen`).
    pub fn user(&self, hash: u64, what: &str) -> String {
        format!("{}{{user:{hash:016x}}}:{what}", self.prefix)
    }

    pub fn user_limit(&self, hash: u64) -> String {
        format!("{}{{user:{hash:016x}}}:limit", self.prefix)
    }

    /// A JA4 is 36 characters of `[a-z0-9_]`: safe inside a hash tag.
    pub fn fingerprint_limit(&self, ja4: &str) -> String {
        format!("{}{{fp:{ja4}}}:limit", self.prefix)
    }

    pub fn global_limit(&self) -> String {
        format!("{}{{global}}:limit", self.prefix)
    }

    /// One hash slot for every route's attack keys, so that one `MGET` reads
    /// them all.
    pub fn attack(&self, route: &str, what: &str) -> String {
        format!("{}{{attack}}:{route}:{what}", self.prefix)
    }

    /// The ban on exactly `target` (a hash: `until`, `reason`), in the slot
    /// of the client (an address, or an IPv6 client's network) or of the
    /// network.
    pub fn ban(&self, target: IpNet) -> String {
        match self.is_client(target) {
            true => format!("{}{{ip:{}}}:ban", self.prefix, member(target)),
            false => format!("{}{{net:{}}}:ban", self.prefix, target.trunc()),
        }
    }

    /// Returns true if and only if `target` is what a client is keyed by.
    pub fn is_client(&self, target: IpNet) -> bool {
        is_suspect(target, self.ipv6_prefix)
    }

    /// The ban index the admin API lists: address bans, network bans
    /// (zsets: member → until), and their reasons.
    pub fn index(&self, what: &str) -> String {
        format!("{}{{bans}}:{what}", self.prefix)
    }

    /// The index table `target` belongs in.
    pub fn index_of(&self, target: IpNet) -> String {
        self.index(match self.is_client(target) {
            true => "ip",
            false => "net",
        })
    }

    pub fn hash_key(&self) -> String {
        format!("{}{{hashkey}}", self.prefix)
    }
}

/// Returns true if and only if `target` is one address.
pub(super) fn is_address(target: IpNet) -> bool {
    target.prefix_len() == target.max_prefix_len()
}

/// Addresses are listed bare, networks as CIDR.
pub(super) fn member(target: IpNet) -> String {
    match is_address(target) {
        true => target.addr().to_string(),
        false => target.trunc().to_string(),
    }
}
