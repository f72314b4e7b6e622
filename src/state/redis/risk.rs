//! Risk's memory in Redis: the recent successes and failures of a client
//! and of its subnet, and the usernames that logged in here, so that a
//! replica's risk decision sees what every replica saw (`risk::memory`
//! keeps the same in process, and answers when Redis does not).

use redis::Script;
use std::net::IpAddr;

use super::{millis, BackendError, Redis};
use crate::rate_limit::{subnet_of, UsernameKey};

/// Successes and failures in the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub successes: u32,
    pub failures: u32,
}

/// What every replica saw of a login's client, subnet and username.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub client: Counts,
    pub subnet: Counts,
    pub username_succeeded: bool,
}

pub(super) fn script() -> Script {
    Script::new(include_str!("risk.lua"))
}

impl Redis {
    /// Reads risk's shared memory for a login from `ip` for `username`.
    pub async fn risk_seen(&self, ip: IpAddr, username: UsernameKey) -> Result<Seen, BackendError> {
        let (client, subnet, user) = self.risk_keys(ip, username);
        let hmget = |key: &str| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(key).arg("s").arg("f");
            cmd
        };
        type Pair = (Option<u32>, Option<u32>);
        let counts = |(s, f): Pair| Counts {
            successes: s.unwrap_or(0),
            failures: f.unwrap_or(0),
        };
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&user);
        // The three keys are in three hash slots: one pipeline on a single
        // Redis, three commands on a cluster.
        let (client, subnet, seen): (Pair, Pair, bool) = match self.is_cluster()? {
            true => (
                self.query(&hmget(&client)).await?,
                self.query(&hmget(&subnet)).await?,
                self.query(&exists).await?,
            ),
            false => {
                let mut pipe = redis::pipe();
                pipe.add_command(hmget(&client))
                    .add_command(hmget(&subnet))
                    .add_command(exists);
                self.query_pipe(&pipe).await?
            }
        };
        Ok(Seen {
            client: counts(client),
            subnet: counts(subnet),
            username_succeeded: seen,
        })
    }

    /// Counts the shop's answer to a login from `ip` for `username`.
    pub async fn risk_record(
        &self,
        ip: IpAddr,
        username: UsernameKey,
        failed: bool,
    ) -> Result<(), BackendError> {
        let (client, subnet, user) = self.risk_keys(ip, username);
        let field = if failed { "f" } else { "s" };
        // A success marks the username, for as long as its device cookie.
        let mark = match failed {
            true => 0,
            false => millis(self.risk_memory).max(1),
        };
        if !self.is_cluster()? {
            let mut keys = vec![client.as_str(), subnet.as_str()];
            keys.extend((mark > 0).then_some(user.as_str()));
            return self.risk_count(&keys, field, mark).await;
        }
        // One hash slot per script on a cluster.
        self.risk_count(&[&client], field, 0).await?;
        self.risk_count(&[&subnet], field, 0).await?;
        if mark > 0 {
            self.risk_count(&[&user], field, mark).await?;
        }
        Ok(())
    }

    async fn risk_count(&self, keys: &[&str], field: &str, mark: u64) -> Result<(), BackendError> {
        let mut call = self.scripts.risk.prepare_invoke();
        for key in keys {
            call.key(*key);
        }
        call.arg(field)
            .arg(millis(self.policy.load().rules.window()))
            .arg(mark);
        let _: i64 = self.invoke(&call).await?;
        Ok(())
    }

    fn risk_keys(&self, ip: IpAddr, username: UsernameKey) -> (String, String, String) {
        let (v4, v6) = self.policy.load().prefixes;
        let net = subnet_of(ip, v4, v6);
        (
            self.keys.ip(ip, "risk"),
            self.keys.net(net, "risk"),
            self.keys.user(username.0, "seen"),
        )
    }
}
