//! How risky one login attempt is: a pure function of signals gathered
//! across clients (attack mode, a known device, the client's and its
//! subnet's recent history, a leaked password, whether the account ever
//! logged in here), and what the operator wants done at each level.
//!
//! The leaked filters catch the breaches credgate has seen; risk is for the
//! campaigns it has not: a login from a browser that never logged in to the
//! account, during an attack, on an account that never logged in here, is
//! the shape of stuffing whatever the breach. Like [`crate::verdict`], the
//! decision has no I/O, no clock and no locks, so its table is a unit test;
//! the bounded memory it reads lives in [`memory`].

pub mod memory;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderName};

use crate::config::{self, RiskAction};
use crate::device::{DeviceKeys, DeviceUser};
use crate::fingerprint::FingerprintReputation;
use crate::outcome::LoginOutcome;
use crate::rate_limit::{AttemptKeys, Budget};
use crate::state::State;

pub use memory::RiskMemory;

/// The header that carries a risky login's level to the shop. Ours alone:
/// a client's copy is removed on every route.
pub const HEADER: HeaderName = HeaderName::from_static("credgate-risk");

/// What a throttled risky login is told to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The risk of one login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    pub const ALL: [Level; 3] = [Self::Low, Self::Medium, Self::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Recent logins from one client or one subnet, as far as the bounded
/// memory knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum History {
    /// Nothing that stands out: no attempts, as many failures as
    /// successes, or a few failures.
    #[default]
    Quiet,
    /// Mostly failing: at least `min_failures`, and more failures than
    /// successes.
    Failing,
    /// Logging people in: more successes than failures. An office or a
    /// household; a stuffer's address fails far more than it succeeds.
    Succeeding,
}

impl History {
    /// The history of `successes` and `failures` in the current window.
    pub fn of(successes: u32, failures: u32, min_failures: u32) -> Self {
        if failures >= min_failures && failures > successes {
            Self::Failing
        } else if successes > failures {
            Self::Succeeding
        } else {
            Self::Quiet
        }
    }
}

/// What the stages before the decision know about one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// The route is under a campaign (the attack-mode detector).
    pub attack_mode: bool,
    /// The request carries a valid device cookie for this username.
    pub known_device: bool,
    /// The password is in the passwords filter (with some username).
    pub leaked_password: bool,
    /// Whether the username has logged in successfully here, as far as the
    /// memory reaches; `None`: unknown.
    pub username_succeeded_before: Option<bool>,
    pub client: History,
    pub subnet: History,
    /// The client software's fingerprint is a tool's: its logins mostly
    /// fail, from many addresses (`Failing`).
    pub fingerprint: History,
}

/// The level of an attempt.
///
/// A known device is low: a stuffer does not hold the cookie the account's
/// owner earned, unless it also tries a leaked password during an attack
/// (a stolen browser profile), which is medium. Otherwise points add up:
/// attack mode 3, or 2 from an address that has been logging people in
/// (an office, a household: [`History::Succeeding`]); a leaked password 1,
/// a failing client 1, a failing subnet 1, a tool's fingerprint 1, and,
/// during an attack only, an account that never logged in here 1 (outside
/// an attack, first logins are ordinary, and a fresh replica knows
/// nobody). 0 is low, 1–2 medium, 3 or more high.
///
/// So during an attack a device that never logged in to the account is
/// high on its own, whichever account it tries: the campaign's bots try
/// the shop's active customers as often as its dormant ones, from
/// addresses with no history. A first-time customer's device meets the
/// shop's step-up then; a customer's new device at the office, on an
/// account that has logged in before, stays medium.
pub fn assess(s: &Signals) -> Level {
    if s.known_device {
        return match s.attack_mode && s.leaked_password {
            true => Level::Medium,
            false => Level::Low,
        };
    }
    let never_succeeded = s.username_succeeded_before == Some(false);
    let vouched = s.client == History::Succeeding;
    let points = 2 * u8::from(s.attack_mode)
        + u8::from(s.attack_mode && !vouched)
        + u8::from(s.leaked_password)
        + u8::from(s.client == History::Failing)
        + u8::from(s.subnet == History::Failing)
        + u8::from(s.fingerprint == History::Failing)
        + u8::from(s.attack_mode && never_succeeded);
    match points {
        0 => Level::Low,
        1 | 2 => Level::Medium,
        _ => Level::High,
    }
}

/// The level after the untrusted-device budget. Every unknown device on a
/// route under attack takes a cell of `budget`, so a campaign's volume
/// spends it; over it, the attempt is high, and gets what the operator
/// does with high (a step-up on defaults). A step-up, not a 429: a
/// first-time customer competes with the campaign for the budget, and a
/// refusal turns them away for good, while a step-up lets them prove who
/// they are and costs a bot the pair.
pub fn within_budget(level: Level, signals: &Signals, budget: Option<&Budget>) -> Level {
    match budget {
        Some(budget) if signals.attack_mode && !signals.known_device => match budget.admit() {
            Ok(()) => level,
            Err(_) => Level::High,
        },
        _ => level,
    }
}

/// The operator's action per level, from `[risk]`. Low is always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub on_medium: RiskAction,
    pub on_high: RiskAction,
}

impl Policy {
    pub fn new(risk: &config::Risk) -> Self {
        Self {
            on_medium: risk.on_medium,
            on_high: risk.on_high,
        }
    }

    /// What an attempt of `level` gets.
    pub fn action(&self, level: Level) -> RiskAction {
        match level {
            Level::Low => RiskAction::Allow,
            Level::Medium => self.on_medium,
            Level::High => self.on_high,
        }
    }
}

/// Whether a route is under attack: the attack-mode detector, behind the
/// one question risk asks of it.
pub trait AttackMode: Debug + Send + Sync {
    /// Returns true if and only if the login route at `route_index` is in
    /// attack mode now.
    fn is_on(&self, route_index: usize) -> bool;
}

impl AttackMode for crate::attack::AttackMode {
    fn is_on(&self, route_index: usize) -> bool {
        crate::attack::AttackMode::is_on(self, route_index)
    }
}

/// The risk stage: where the signals come from, and the policy.
#[derive(Debug)]
pub struct Risk {
    pub policy: Policy,
    /// Shared by the logins from untrusted devices during an attack.
    pub untrusted: Option<Budget>,
    pub device: DeviceKeys,
    /// Kept by a reload that reads it the same way ([`RiskMemory::fits`]).
    pub memory: Arc<RiskMemory>,
    /// Every replica's history, with `backend = "redis"`; `memory` answers
    /// on the local backend and when Redis does not.
    pub shared: State,
    pub attack: Arc<dyn AttackMode>,
    pub fingerprint: FingerprintReputation,
}

impl Risk {
    /// The level to act on: [`assess`], then the untrusted-device budget.
    /// Returns the level and whether the budget raised it.
    pub fn level(&self, signals: &Signals) -> (Level, bool) {
        let assessed = assess(signals);
        let level = within_budget(assessed, signals, self.untrusted.as_ref());
        (level, level != assessed)
    }

    /// The signals of one parsed login attempt on the route at
    /// `route_index`.
    pub async fn signals(
        &self,
        route_index: usize,
        keys: &AttemptKeys,
        leaked_password: bool,
    ) -> Signals {
        let now = Instant::now();
        let here = self.memory.succeeded_before(keys.username);
        let ((client, subnet), succeeded) =
            match self.shared.risk_seen(keys.client, keys.username).await {
                Some(seen) => (
                    memory::shared_history(&seen),
                    seen.username_succeeded || here,
                ),
                None => (self.memory.history(keys.client.0, now), here),
            };
        let fingerprint = match self.fingerprint.is_tool(keys.fingerprint, now) {
            true => History::Failing,
            false => History::Quiet,
        };
        Signals {
            attack_mode: self.attack.is_on(route_index),
            known_device: keys.known_device,
            leaked_password,
            username_succeeded_before: Some(succeeded),
            client,
            subnet,
            fingerprint,
        }
    }

    /// Learns from the shop's answer to a login (here and, with Redis, for
    /// every replica), and gives a successful one for `device` (a login not
    /// annotated as risky) the device cookie.
    pub async fn settle(
        &self,
        keys: &AttemptKeys,
        device: Option<DeviceUser>,
        outcome: LoginOutcome,
        response: &mut HeaderMap,
    ) {
        let failed = outcome.failed();
        (self.memory).record(keys.client.0, keys.username, failed, Instant::now());
        if let Some(failed) = failed {
            (self.shared)
                .risk_record(keys.client, keys.username, failed)
                .await;
        }
        if let (Some(false), Some(user)) = (failed, device) {
            response.append(SET_COOKIE, self.device.issue(user, SystemTime::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use History::*;
    use Level::*;

    #[test]
    fn risk_table() {
        // (attack, known device, leaked password, succeeded before, client, subnet) → level
        let cases = [
            // Ordinary traffic.
            (false, false, false, Some(true), Quiet, Quiet, Low),
            (false, false, false, Some(false), Quiet, Quiet, Low),
            (false, false, false, None, Quiet, Quiet, Low),
            (false, true, false, Some(true), Quiet, Quiet, Low),
            // One signal outside an attack: medium.
            (false, false, true, Some(true), Quiet, Quiet, Medium),
            (false, false, false, Some(true), Failing, Quiet, Medium),
            (false, false, false, Some(false), Quiet, Failing, Medium),
            (false, false, true, Some(false), Failing, Quiet, Medium),
            // Several: high.
            (false, false, true, Some(true), Failing, Failing, High),
            // An address that logs people in is nothing outside an attack.
            (false, false, false, Some(false), Succeeding, Quiet, Low),
            (false, false, true, Some(true), Succeeding, Quiet, Medium),
            // Attack mode: a device new to the account is high on its own,
            // on an active account as on a dormant one.
            (true, false, false, Some(true), Quiet, Quiet, High),
            (true, false, false, None, Quiet, Quiet, High),
            (true, false, false, Some(false), Quiet, Quiet, High),
            (true, false, true, Some(true), Quiet, Quiet, High),
            (true, false, false, Some(true), Failing, Quiet, High),
            // ...unless its address has been logging people in: medium on
            // an account that has logged in before, and no more.
            (true, false, false, Some(true), Succeeding, Quiet, Medium),
            (true, false, false, None, Succeeding, Quiet, Medium),
            (true, false, false, Some(false), Succeeding, Quiet, High),
            (true, false, true, Some(true), Succeeding, Quiet, High),
            (true, false, false, Some(true), Succeeding, Failing, High),
            // A known device outweighs everything but a leaked password in
            // an attack.
            (true, true, false, Some(false), Failing, Failing, Low),
            (false, true, true, Some(true), Failing, Failing, Low),
            (true, true, true, Some(true), Quiet, Quiet, Medium),
        ];
        for (attack, known, leaked, before, client, subnet, want) in cases {
            let signals = Signals {
                attack_mode: attack,
                known_device: known,
                leaked_password: leaked,
                username_succeeded_before: before,
                client,
                subnet,
                fingerprint: Quiet,
            };
            assert_eq!(assess(&signals), want, "{signals:?}");
        }
    }

    #[test]
    fn a_tools_fingerprint_counts_like_a_failing_client() {
        // (attack, known device, client, fingerprint) → level; the other
        // signals quiet. Beside `risk_table` rather than in it, so that the
        // two tables change apart.
        let cases = [
            (false, false, Quiet, Failing, Medium),
            (false, false, Failing, Failing, Medium),
            (true, false, Quiet, Failing, High),
            (true, false, Failing, Failing, High),
            (true, false, Succeeding, Failing, High),
            // The account's owner, with its browser's cookie, is not
            // suspected for the tool that shares its TLS stack.
            (false, true, Quiet, Failing, Low),
            (true, true, Failing, Failing, Low),
        ];
        for (attack, known, client, fingerprint, want) in cases {
            let signals = Signals {
                attack_mode: attack,
                known_device: known,
                username_succeeded_before: Some(true),
                client,
                fingerprint,
                ..Signals::default()
            };
            assert_eq!(assess(&signals), want, "{signals:?}");
        }
    }

    /// Over the budget an unknown device under attack is stepped up, not
    /// refused; known devices and quiet routes take no cell.
    #[test]
    fn over_the_untrusted_budget_an_unknown_device_is_high() {
        let limit: config::Limit = toml::from_str("rate = \"1/h\"\nburst = 2").unwrap();
        let budget = Budget::new(&limit);
        let attack = Signals {
            attack_mode: true,
            username_succeeded_before: Some(true),
            ..Signals::default()
        };
        let known = Signals {
            known_device: true,
            ..attack
        };
        let quiet = Signals {
            attack_mode: false,
            ..attack
        };
        let high = Signals {
            username_succeeded_before: Some(false),
            ..attack
        };
        let budget = Some(&budget);
        assert_eq!(within_budget(assess(&high), &high, budget), High, "1 of 2");
        assert_eq!(within_budget(Low, &known, budget), Low);
        assert_eq!(within_budget(Low, &quiet, budget), Low);
        assert_eq!(within_budget(Medium, &attack, budget), Medium, "2 of 2");
        assert_eq!(within_budget(Medium, &attack, budget), High, "spent");
        assert_eq!(within_budget(Low, &known, budget), Low);
        assert_eq!(within_budget(Medium, &quiet, budget), Medium);
        assert_eq!(within_budget(Medium, &attack, None), Medium);
    }

    #[test]
    fn history_is_failing_when_failures_dominate() {
        assert_eq!(History::of(0, 2, 3), Quiet);
        assert_eq!(History::of(0, 3, 3), Failing);
        assert_eq!(History::of(3, 3, 3), Quiet);
        assert_eq!(History::of(2, 5, 3), Failing);
    }

    #[test]
    fn history_is_succeeding_when_successes_outnumber_failures() {
        assert_eq!(History::of(0, 0, 3), Quiet);
        assert_eq!(History::of(1, 0, 3), Succeeding);
        assert_eq!(History::of(4, 2, 3), Succeeding);
        assert_eq!(History::of(2, 2, 3), Quiet);
        // A few failures without the minimum stay quiet, not failing.
        assert_eq!(History::of(0, 2, 3), Quiet);
    }

    #[test]
    fn policy_maps_levels_to_actions() {
        let policy = Policy {
            on_medium: RiskAction::Throttle,
            on_high: RiskAction::Block,
        };
        assert_eq!(policy.action(Low), RiskAction::Allow);
        assert_eq!(policy.action(Medium), RiskAction::Throttle);
        assert_eq!(policy.action(High), RiskAction::Block);
        let defaults = Policy::new(&config::Risk::default());
        assert_eq!(defaults.action(Medium), RiskAction::Allow);
        assert_eq!(defaults.action(High), RiskAction::Annotate);
    }
}
