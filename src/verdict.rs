//! What to do with a login attempt: a pure function of what the earlier
//! stages observed and of the operator's policy. No I/O, no clock, no locks,
//! so the whole decision table is a unit test.

use crate::config::Action;
use crate::leaked::Found;

/// What the leaked checks found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The username and password were leaked together.
    LeakedPair,
    /// The password is in a breach corpus, with some username.
    LeakedPassword,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Self::Clean, Self::LeakedPair, Self::LeakedPassword];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::LeakedPair => "leaked_pair",
            Self::LeakedPassword => "leaked_password",
        }
    }

    /// The value of the annotation header.
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Self::Clean => None,
            Self::LeakedPair => Some("pair"),
            Self::LeakedPassword => Some("password"),
        }
    }
}

/// The policy for leaked credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub on_leaked_pair: Action,
    pub on_leaked_password: Action,
}

/// What the stages before the decision found out about one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    pub pair_leaked: bool,
    pub password_leaked: bool,
}

impl From<Found> for Signals {
    fn from(found: Found) -> Self {
        Self {
            pair_leaked: found.pair,
            password_leaked: found.password,
        }
    }
}

/// What happens to the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward unchanged.
    Allow,
    /// Forward with the annotation header for this verdict.
    Annotate(Verdict),
    /// Refuse with 403.
    Block,
    /// Forward unchanged; metrics and the log record the verdict.
    Shadow(Verdict),
}

/// The verdict and the decision for one attempt.
pub fn decide(signals: &Signals, policy: &Policy) -> (Verdict, Decision) {
    // A leaked pair is the stronger finding: it names this very account.
    let (verdict, action) = match (signals.pair_leaked, signals.password_leaked) {
        (true, _) => (Verdict::LeakedPair, policy.on_leaked_pair),
        (false, true) => (Verdict::LeakedPassword, policy.on_leaked_password),
        (false, false) => return (Verdict::Clean, Decision::Allow),
    };
    let decision = match action {
        Action::Block => Decision::Block,
        Action::Annotate => Decision::Annotate(verdict),
        Action::Shadow => Decision::Shadow(verdict),
    };
    (verdict, decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn decision_table() {
        let signals = |pair, password| Signals {
            pair_leaked: pair,
            password_leaked: password,
        };
        let policy = |pair, password| Policy {
            on_leaked_pair: pair,
            on_leaked_password: password,
        };
        let cases = [
            (
                signals(false, false),
                policy(Block, Block),
                Verdict::Clean,
                Decision::Allow,
            ),
            (
                signals(true, true),
                policy(Block, Annotate),
                Verdict::LeakedPair,
                Decision::Block,
            ),
            (
                signals(true, false),
                policy(Annotate, Block),
                Verdict::LeakedPair,
                Decision::Annotate(Verdict::LeakedPair),
            ),
            (
                signals(true, true),
                policy(Shadow, Block),
                Verdict::LeakedPair,
                Decision::Shadow(Verdict::LeakedPair),
            ),
            (
                signals(false, true),
                policy(Block, Annotate),
                Verdict::LeakedPassword,
                Decision::Annotate(Verdict::LeakedPassword),
            ),
            (
                signals(false, true),
                policy(Block, Block),
                Verdict::LeakedPassword,
                Decision::Block,
            ),
            (
                signals(false, true),
                policy(Block, Shadow),
                Verdict::LeakedPassword,
                Decision::Shadow(Verdict::LeakedPassword),
            ),
        ];
        for (signals, policy, verdict, decision) in cases {
            assert_eq!(
                decide(&signals, &policy),
                (verdict, decision),
                "{signals:?} {policy:?}"
            );
        }
    }
}
