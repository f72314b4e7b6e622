//! Real customers, behaving like people: a browser that keeps its cookies,
//! a mistyped password now and then, one retry after a short `Retry-After`
//! (60 s of patience; a longer wait or a second refusal and they give up),
//! a step-up passed when asked, and a password reset when told that theirs
//! leaked. Human pauses are in real seconds: credgate's clocks are real.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::browser::{Browser, Http, Outcome};
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
}

/// One person and their browser.
pub struct Customer {
    pub person: Person,
    browser: Browser,
    rng: Rng,
    story: Story,
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
        };
        Self {
            person,
            browser,
            rng,
            story,
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
    }

    /// The login during the campaign, from today's network.
    pub async fn visit(mut self, shop: Arc<Shop>) -> Story {
        self.browser = self.browser.moved_to(self.person.now);
        let (user, password) = (self.person.username.clone(), self.person.password.clone());
        if self.person.mistypes {
            let typo = format!("{password}x");
            if self.submit(&user, &typo).await != Outcome::WrongPassword {
                return self.story; // refused and gave up (or, oddly, in)
            }
            self.pause(2.0, 5.0).await;
        }
        let mut outcome = self.submit(&user, &password).await;
        if outcome == Outcome::LeakedBlock {
            outcome = self.reset_and_retry(&shop, &user, &password).await;
        }
        self.story.got_in = outcome == Outcome::In;
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
    /// a step-up passed if asked.
    async fn submit(&mut self, user: &str, password: &str) -> Outcome {
        let mut outcome = self.browser.log_in(user, password).await.outcome;
        if let Outcome::Refused { retry_after, .. } = outcome {
            self.met_friction();
            match retry_after {
                Some(wait) if wait <= PATIENCE => {
                    tokio::time::sleep(wait).await;
                    self.pause(0.5, 2.0).await;
                    outcome = self.browser.log_in(user, password).await.outcome;
                }
                _ => return outcome,
            }
        }
        if outcome.refused() && outcome != Outcome::LeakedBlock {
            self.met_friction();
        }
        if let Outcome::StepUp(challenge) = &outcome {
            self.story.friction = true;
            self.story.step_up = true;
            self.pause(5.0, 15.0).await; // fetching the code
            outcome = self.browser.pass_step_up(challenge).await.outcome;
        }
        outcome
    }

    fn met_friction(&mut self) {
        self.story.friction = true;
        self.story.refusals += 1;
    }

    async fn pause(&mut self, low: f64, high: f64) {
        let seconds = self.rng.between(low, high);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
}
