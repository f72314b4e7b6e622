//! The attackers: crews that replay a breach in one shape (how their
//! attempts spread over addresses and time), each bot with its own address,
//! fingerprint and cookies. A crew re-queues a pair that credgate refused
//! with a 429 or a ban, like a real tool, up to three tries; a leaked-pair
//! block and a step-up are final (the tool cannot get past either).

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::browser::{Browser, Http, Outcome, Reply, BROWSER_FINGERPRINTS, TOOL_FINGERPRINT};
use crate::population::{residential_address, Pair, Population, COMMON_PASSWORDS};
use crate::rng::Rng;

/// How the attempts of a crew spread over addresses and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Residential,
    Volumetric,
    Ipv6,
    LowAndSlow,
    UsernameFirst,
    Spraying,
    CookieBotnet,
}

impl Shape {
    pub const ALL: [Shape; 7] = [
        Self::Residential,
        Self::Volumetric,
        Self::Ipv6,
        Self::LowAndSlow,
        Self::UsernameFirst,
        Self::Spraying,
        Self::CookieBotnet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Residential => "residential",
            Self::Volumetric => "volumetric",
            Self::Ipv6 => "ipv6",
            Self::LowAndSlow => "low-and-slow",
            Self::UsernameFirst => "username-first",
            Self::Spraying => "spraying",
            Self::CookieBotnet => "cookie-botnet",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bots, attempts per bot, and where in the campaign (fractions of it)
    /// they fall, for the full-size crew.
    fn layout(self) -> (usize, usize, Spread) {
        match self {
            Self::Residential => (600, 2, Spread::Random(0.0, 1.0)),
            Self::Volumetric => (3, 400, Spread::Even(0.0, 1.0)),
            Self::Ipv6 => (200, 6, Spread::Random(0.0, 1.0)),
            Self::LowAndSlow => (150, 4, Spread::Even(0.0, 1.0)),
            Self::UsernameFirst => (100, 2, Spread::Random(0.35, 1.0)),
            Self::Spraying => (500, 4, Spread::Random(0.0, 1.0)),
            Self::CookieBotnet => (400, 3, Spread::Random(0.0, 1.0)),
        }
    }

    /// The shape of the crew that replays the known breach beside this one.
    fn known_twin(self) -> Self {
        match self {
            Self::UsernameFirst | Self::Spraying => Self::Residential,
            other => other,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Spread {
    /// Each attempt at a random moment between the two fractions.
    Random(f64, f64),
    /// A bot's attempts evenly spaced between them, with a little jitter.
    Even(f64, f64),
}

/// Which breach a crew replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    Known,
    Unknown,
}

impl Breach {
    pub fn actor(self) -> &'static str {
        match self {
            Self::Known => "attack-known",
            Self::Unknown => "attack-unknown",
        }
    }
}

/// One bot: an address, a fingerprint, its moments (fractions of the
/// campaign), and which of the crew's own cookie jars it replays, if any.
#[derive(Debug, Clone)]
struct Bot {
    addr: IpAddr,
    fingerprint: &'static str,
    moments: Vec<f64>,
    jar: Option<usize>,
}

/// What one crew did, and what it got.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CrewStats {
    pub attempts: u64,
    pub reached_shop: u64,
    pub throttled: u64,
    pub banned: u64,
    pub leaked_blocks: u64,
    pub step_ups: u64,
    pub errors: u64,
    pub probes: u64,
    pub valid_pairs: usize,
    pub takeovers: usize,
    /// When each takeover happened, in seconds from the campaign's start.
    pub takeover_secs: Vec<f64>,
}

#[derive(Default)]
struct Progress {
    queue: VecDeque<(usize, u8)>,
    taken: HashSet<usize>,
    stats: CrewStats,
}

/// A crew replaying one breach in one shape.
pub struct Crew {
    pub shape: Shape,
    pub breach: Breach,
    pairs: Vec<Pair>,
    bots: Vec<Bot>,
    /// Username-first: usernames to probe, and the probing bots.
    probes: Vec<Bot>,
    /// Accounts the crew registered itself, to collect real cookies.
    own_accounts: Vec<Pair>,
    progress: Mutex<Progress>,
}

/// The most tries of one pair (the first and two after a refusal).
const MAX_TRIES: u8 = 3;

/// Crew options from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Tactics {
    /// Bots draw a browser's fingerprint instead of the tool's.
    pub rotate_fingerprint: bool,
}

impl Crew {
    /// The unknown-breach crew of `shape` and its known-breach twin, with
    /// addresses drawn apart.
    pub fn pair_for(
        shape: Shape,
        population: &mut Population,
        params: &crate::population::Params,
        tactics: Tactics,
        rng: &mut Rng,
    ) -> [Crew; 2] {
        let unknown = Self::plan(
            shape,
            Breach::Unknown,
            1.0,
            population,
            params,
            tactics,
            rng,
        );
        let known_shape = shape.known_twin();
        let known = Self::plan(
            known_shape,
            Breach::Known,
            0.25,
            population,
            params,
            tactics,
            rng,
        );
        [unknown, known]
    }

    fn plan(
        shape: Shape,
        breach: Breach,
        scale: f64,
        population: &mut Population,
        params: &crate::population::Params,
        tactics: Tactics,
        rng: &mut Rng,
    ) -> Crew {
        let (count, per_bot, spread) = shape.layout();
        let count = ((count as f64 * scale).ceil() as usize).max(1);
        let subnet = rng.next_u64() as u16;
        let mut bots: Vec<Bot> = (0..count)
            .map(|_| Bot {
                addr: bot_address(shape, subnet, rng),
                fingerprint: fingerprint(shape, tactics, rng),
                moments: moments(spread, per_bot, rng),
                jar: None,
            })
            .collect();
        // A tool keeps up to a fifth of its capacity for refused pairs.
        let mut list_size = count * per_bot * 4 / 5;
        if shape == Shape::UsernameFirst {
            // It probes a longer list so that what exists fills its capacity.
            list_size = (list_size as f64 / params.exist_rate).round() as usize;
        }
        let pairs = match (shape, breach) {
            (Shape::Spraying, _) => spray_list(population, list_size, rng),
            (_, Breach::Known) => sample(&population.known_breach, list_size, rng),
            (_, Breach::Unknown) => population.unknown_breach(list_size, params, rng),
        };
        let own_accounts = match shape {
            Shape::CookieBotnet => {
                let own = population.add_attacker_accounts((20.0 * scale).ceil() as usize, rng);
                for (i, bot) in bots.iter_mut().enumerate() {
                    bot.jar = Some(i % own.len());
                }
                own
            }
            _ => Vec::new(),
        };
        let probes = match shape {
            Shape::UsernameFirst => (0..50)
                .map(|_| Bot {
                    addr: residential_address(rng),
                    fingerprint: fingerprint(shape, tactics, rng),
                    moments: moments(Spread::Random(0.0, 0.3), pairs.len().div_ceil(50), rng),
                    jar: None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut progress = Progress::default();
        progress.stats.valid_pairs = pairs.iter().filter(|p| p.valid).count();
        if shape != Shape::UsernameFirst {
            progress.queue = (0..pairs.len()).map(|i| (i, 0)).collect();
        }
        Crew {
            shape,
            breach,
            pairs,
            bots,
            probes,
            own_accounts,
            progress: Mutex::new(progress),
        }
    }

    pub fn stats(&self) -> CrewStats {
        let progress = self.progress.lock().expect("crew");
        CrewStats {
            takeovers: progress.taken.len(),
            ..progress.stats.clone()
        }
    }

    /// Before the campaign: the crew's bots log into the accounts it
    /// registered, from their own addresses, to hold real cookie jars.
    pub async fn harvest_cookies(&self, http: &Http, gate: std::net::SocketAddr) -> Vec<Browser> {
        let mut jars = Vec::new();
        for (i, account) in self.own_accounts.iter().enumerate() {
            let bot = &self.bots[i % self.bots.len()];
            let fingerprint = BROWSER_FINGERPRINTS[i % BROWSER_FINGERPRINTS.len()];
            let mut browser = Browser::new(http, gate, bot.addr, fingerprint, "attack-owned");
            browser.log_in(&account.username, &account.password).await;
            jars.push(browser);
        }
        jars
    }

    /// Runs every bot of the crew over a campaign of `length` from `start`.
    pub async fn run(
        self: Arc<Self>,
        http: Http,
        gate: std::net::SocketAddr,
        jars: Vec<Browser>,
        start: Instant,
        length: Duration,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for bot in self.probes.clone() {
            let crew = self.clone();
            let browser = Browser::new(&http, gate, bot.addr, bot.fingerprint, "attack-probe");
            tasks.spawn(async move { crew.probe(bot, browser, start, length).await });
        }
        for bot in self.bots.clone() {
            let crew = self.clone();
            let browser = match bot.jar {
                Some(jar) => jars[jar].moved_to(bot.addr),
                None => Browser::new(&http, gate, bot.addr, bot.fingerprint, self.breach.actor()),
            };
            let browser = browser.acting_as(self.breach.actor(), bot.fingerprint);
            tasks.spawn(async move { crew.attack(bot, browser, start, length).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn attack(&self, bot: Bot, mut browser: Browser, start: Instant, length: Duration) {
        for moment in bot.moments {
            tokio::time::sleep_until(start + length.mul_f64(moment)).await;
            let Some((index, tries)) = self.next_pair() else {
                continue;
            };
            let pair = &self.pairs[index];
            let reply = browser.log_in(&pair.username, &pair.password).await;
            self.record(index, tries, &reply, start.elapsed());
        }
    }

    /// Username-first: asks the shop's reset form whether each username
    /// exists, and queues only the pairs of those that do.
    async fn probe(&self, bot: Bot, mut browser: Browser, start: Instant, length: Duration) {
        for moment in bot.moments {
            tokio::time::sleep_until(start + length.mul_f64(moment)).await;
            let Some(index) = self.next_probe() else {
                return;
            };
            let reply = browser.ask_reset(&self.pairs[index].username).await;
            if reply.from_shop && reply.outcome == Outcome::Other(200) {
                self.progress
                    .lock()
                    .expect("crew")
                    .queue
                    .push_back((index, 0));
            }
        }
    }

    fn next_probe(&self) -> Option<usize> {
        let mut progress = self.progress.lock().expect("crew");
        let index = progress.stats.probes as usize;
        (index < self.pairs.len()).then(|| {
            progress.stats.probes += 1;
            index
        })
    }

    fn next_pair(&self) -> Option<(usize, u8)> {
        self.progress.lock().expect("crew").queue.pop_front()
    }

    fn record(&self, index: usize, tries: u8, reply: &Reply, at: Duration) {
        let mut progress = self.progress.lock().expect("crew");
        let stats = &mut progress.stats;
        stats.attempts += 1;
        stats.reached_shop += u64::from(reply.from_shop);
        match &reply.outcome {
            Outcome::In => {
                if progress.taken.insert(index) {
                    progress.stats.takeover_secs.push(at.as_secs_f64());
                }
            }
            Outcome::StepUp(_) => stats.step_ups += 1,
            Outcome::WrongPassword => {}
            Outcome::LeakedBlock => stats.leaked_blocks += 1,
            Outcome::Refused { status, .. } => {
                if *status == 429 {
                    stats.throttled += 1;
                } else {
                    stats.banned += 1;
                }
                if tries + 1 < MAX_TRIES {
                    progress.queue.push_back((index, tries + 1));
                }
            }
            Outcome::Other(_) => stats.errors += 1,
        }
    }
}

fn bot_address(shape: Shape, subnet: u16, rng: &mut Rng) -> IpAddr {
    match shape {
        // One /64 of one provider, every bot on its own address in it.
        Shape::Ipv6 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xbad,
            subnet,
            rng.next_u64() as u16,
            rng.next_u64() as u16,
            rng.next_u64() as u16,
            rng.next_u64() as u16,
        )),
        _ => residential_address(rng),
    }
}

/// A stuffing tool keeps its one fingerprint on every address; a botnet of
/// real browsers (or a tool rotating them) shows browsers' common ones.
fn fingerprint(shape: Shape, tactics: Tactics, rng: &mut Rng) -> &'static str {
    match shape == Shape::CookieBotnet || tactics.rotate_fingerprint {
        true => BROWSER_FINGERPRINTS[rng.below(BROWSER_FINGERPRINTS.len())],
        false => TOOL_FINGERPRINT,
    }
}

fn moments(spread: Spread, count: usize, rng: &mut Rng) -> Vec<f64> {
    let mut moments: Vec<f64> = match spread {
        Spread::Random(from, to) => (0..count).map(|_| rng.between(from, to)).collect(),
        Spread::Even(from, to) => {
            let step = (to - from) / count as f64;
            let offset = rng.between(0.0, step);
            (0..count)
                .map(|k| from + offset + step * k as f64 + rng.between(-0.1, 0.1) * step)
                .collect()
        }
    };
    moments.iter_mut().for_each(|m| *m = m.clamp(0.0, 0.999));
    moments.sort_by(f64::total_cmp);
    moments
}

/// `count` distinct pairs of a (shuffled) breach.
fn sample(pairs: &[Pair], count: usize, rng: &mut Rng) -> Vec<Pair> {
    let count = count.min(pairs.len());
    let start = rng.below(pairs.len() - count + 1);
    pairs[start..start + count].to_vec()
}

/// A few common passwords, each across the same scraped usernames, one
/// password after the other.
fn spray_list(population: &Population, size: usize, rng: &mut Rng) -> Vec<Pair> {
    let usernames = population.some_usernames(size / COMMON_PASSWORDS.len(), rng);
    COMMON_PASSWORDS
        .iter()
        .flat_map(|password| {
            usernames.iter().map(move |username| Pair {
                username: username.clone(),
                password: password.to_string(),
                valid: population.accounts.get(username).map(String::as_str) == Some(*password),
            })
        })
        .collect()
}
