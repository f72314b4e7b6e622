//! Real customers, behaving like people: a browser that keeps its cookies,
//! a mistyped password now and then, one retry after a short `Retry-After`
//! (60 s of patience; a longer wait or a second refusal and they give up),
//! a step-up passed when asked, and a password reset when told that theirs
//! leaked. Human pauses are in real seconds: credgate's clocks are real.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::browser::{Browser, Http, Outcome, Refusal};
use crate::population::{Kind, Person};
use crate::rng::Rng;
use crate::shop::Shop;

/// The longest `Retry-After` a person waits out.
const PATIENCE: Duration = Duration::from_secs(60);
/// Of the customers told their password leaked: share who try it again
/// three times before resetting it (the report).
const STUBBORN_SHARE: f64 = 0.5;

/// What happened to one person.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Story {
    pub kind: Kind,
    pub got_in: bool,
    /// Met a 429, a 403 or a step-up (during the campaign).
    pub friction: bool,
    pub step_up: bool,
    /// 429 and 403 answers received (warm-up and campaign).
    pub refusals: u32,
    /// The warm-up login did not get in.
    pub warm_up_failed: bool,
    /// Told the password leaked (expected only of leaked customers).
    pub told_leaked: bool,
    /// Why this person did not get in, when they did not.
    pub why_not_in: Option<String>,
    /// The friction met during the campaign, each time: a refusal's cause
    /// (`429 untrusted budget`, ...) or `step-up`.
    pub met: Vec<String>,
}

/// One person and their browser.
pub struct Customer {
    pub person: Person,
    browser: Browser,
    rng: Rng,
    story: Story,
    /// Why the last password typed in did not get in.
    note: Option<String>,
}

impl Customer {
    pub fn new(person: Person, http: &Http, gate: SocketAddr, rng: Rng) -> Self {
        let browser = Browser::new(http, gate, person.home, person.fingerprint, "customer");
        let story = Story {
            kind: person.kind,
            got_in: false,
            friction: false,
            step_up: false,
            refusals: 0,
            warm_up_failed: false,
            told_leaked: false,
            why_not_in: None,
            met: Vec::new(),
        };
        Self {
            person,
            browser,
            rng,
            story,
            note: None,
        }
    }

    /// Returns true if and only if this person logged in before the campaign.
    pub fn warms_up(&self) -> bool {
        self.person.kind.returning()
    }

    /// An earlier visit from home: a plain login whose cookies the browser
    /// keeps. Friction here is not counted (it is not the campaign), but a
    /// failure is reported.
    pub async fn warm_up(&mut self) {
        let (user, password) = (self.person.username.clone(), self.person.password.clone());
        let got_in = self.submit(&user, &password).await == Outcome::In;
        self.story.warm_up_failed = !got_in;
        self.story.friction = false;
        self.story.step_up = false;
        self.story.met.clear();
    }

    /// The login during the campaign, from today's network.
    pub async fn visit(mut self, shop: Arc<Shop>) -> Story {
        self.browser = self.browser.moved_to(self.person.now);
        let (user, password) = (self.person.username.clone(), self.person.password.clone());
        if self.person.mistypes {
            let typo = format!("{password}x");
            if self.submit(&user, &typo).await != Outcome::WrongPassword {
                // Refused and gave up (or, oddly, in).
                let note = self.note.take();
                self.story.why_not_in = note.map(|n| format!("at the mistyped password: {n}"));
                return self.story;
            }
            self.pause(2.0, 5.0).await;
        }
        let mut outcome = self.submit(&user, &password).await;
        if outcome == Outcome::LeakedBlock {
            outcome = self.reset_and_retry(&shop, &user, &password).await;
            if let Some(note) = self.note.take() {
                self.note = Some(format!("after the reset: {note}"));
            }
        }
        self.story.got_in = outcome == Outcome::In;
        if !self.story.got_in {
            self.story.why_not_in = self.note.take();
        }
        self.story
    }

    /// Told the password leaked: perhaps try it again, then reset it (out
    /// of band, by e-mail) and log in with the new one.
    async fn reset_and_retry(&mut self, shop: &Shop, user: &str, old: &str) -> Outcome {
        self.story.told_leaked = true;
        if self.rng.chance(STUBBORN_SHARE) {
            for _ in 0..3 {
                self.pause(2.0, 4.0).await;
                if self.submit(user, old).await != Outcome::LeakedBlock {
                    break;
                }
            }
        }
        let new = format!("{}-{}", self.rng.token(10), "renewed");
        shop.reset_password(user, &new);
        self.pause(10.0, 20.0).await; // reading the e-mail
        self.submit(user, &new).await
    }

    /// One password typed in: retried once after a short `Retry-After`,
    /// a step-up passed if asked. Notes why it did not get in.
    async fn submit(&mut self, user: &str, password: &str) -> Outcome {
        let mut outcome = self.browser.log_in(user, password).await.outcome;
        if let Outcome::Refused {
            retry_after, why, ..
        } = outcome
        {
            self.met_friction(why);
            match retry_after {
                Some(wait) if wait <= PATIENCE => {
                    tokio::time::sleep(wait).await;
                    self.pause(0.5, 2.0).await;
                    outcome = self.browser.log_in(user, password).await.outcome;
                    if let Outcome::Refused { why: again, .. } = outcome {
                        self.met_friction(again);
                        self.note = Some(format!(
                            "{} after waiting out a {}",
                            again.label(),
                            why.label()
                        ));
                        return outcome;
                    }
                }
                Some(_) => {
                    self.note = Some(format!("{}, Retry-After over 60 s", why.label()));
                    return outcome;
                }
                None => {
                    self.note = Some(format!("{}, no Retry-After", why.label()));
                    return outcome;
                }
            }
        }
        if let Outcome::StepUp(challenge) = &outcome {
            self.story.friction = true;
            self.story.step_up = true;
            self.story.met.push("step-up".to_owned());
            self.pause(5.0, 15.0).await; // fetching the code
            outcome = self.browser.pass_step_up(challenge).await.outcome;
            if outcome != Outcome::In {
                self.note = Some(format!("step-up not completed ({})", describe(&outcome)));
                return outcome;
            }
        }
        self.note = (outcome != Outcome::In).then(|| describe(&outcome));
        outcome
    }

    fn met_friction(&mut self, why: Refusal) {
        self.story.friction = true;
        self.story.refusals += 1;
        self.story.met.push(why.label());
    }

    async fn pause(&mut self, low: f64, high: f64) {
        let seconds = self.rng.between(low, high);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
}

/// A final answer in a few words (bounded, so that causes add up).
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::In => "in".to_owned(),
        Outcome::WrongPassword => "wrong password".to_owned(),
        Outcome::StepUp(_) => "step-up asked again".to_owned(),
        Outcome::Refused { why, .. } => why.label(),
        Outcome::LeakedBlock => "refused as a leaked pair".to_owned(),
        Outcome::Other(status) => format!("answer {status}"),
    }
}
