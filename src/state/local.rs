//! The in-process backend: governor limiters and the reputation table.
//! It answers alone with `backend = "local"`, and stands in for Redis while
//! Redis fails (`on_backend_error = "local"`).

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::config::Config;
use crate::rate_limit::{AttemptKeys, Limiters, Throttled};
use crate::reputation::{Ban, Observation, Reputation};

#[derive(Debug)]
pub struct Local {
    limiters: Limiters,
    // A std Mutex: every critical section is a few field updates and never
    // awaits, so an async lock would only add cost.
    reputation: Mutex<Reputation>,
}

// === impl Local ===

impl Local {
    pub fn new(config: &Config) -> Self {
        let max = config.state.max_tracked_clients;
        Self {
            limiters: Limiters::new(&config.limits, max),
            reputation: Mutex::new(Reputation::new(&config.suspicion, max)),
        }
    }

    pub fn ban_of(&self, ip: IpAddr) -> Option<Ban> {
        self.reputation().ban_of(ip, Instant::now())
    }

    pub fn admit_request(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.limiters.admit_request(ip)
    }

    pub fn admit(&self, keys: &AttemptKeys) -> Result<(), Throttled> {
        self.limiters.admit(keys)
    }

    pub fn refund(&self, keys: &AttemptKeys, username_only: bool) {
        match username_only {
            true => self.limiters.refund_username(keys),
            false => self.limiters.refund(keys),
        }
    }

    pub fn observe(&self, ip: IpAddr, observation: Observation) -> Option<Ban> {
        self.reputation().observe(ip, observation, Instant::now())
    }

    pub fn bans(&self) -> Vec<(IpNet, Ban)> {
        self.reputation().bans(Instant::now())
    }

    pub fn ban(&self, target: IpNet, duration: Duration) {
        self.reputation().ban(target, duration, Instant::now());
    }

    pub fn unban(&self, target: IpNet) -> bool {
        self.reputation().unban(target)
    }

    /// Expires bans and forgets idle limiter keys; returns the bans in
    /// force and the clients tracked.
    pub fn maintain(&self) -> (usize, usize) {
        self.limiters.forget_idle();
        let mut reputation = self.reputation();
        (
            reputation.expire(Instant::now()),
            reputation.tracked_clients(),
        )
    }

    pub fn tracked_clients(&self) -> usize {
        self.reputation().tracked_clients()
    }

    fn reputation(&self) -> MutexGuard<'_, Reputation> {
        self.reputation.lock().unwrap_or_else(|e| e.into_inner())
    }
}
