//! Who is in a scenario: the shop's accounts, the real people who log in,
//! and the two breaches the attackers replay (one credgate's filter knows,
//! one it has never seen). Everything is drawn from the seed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use crate::browser::BROWSER_FINGERPRINTS;
use crate::rng::Rng;

/// The sizes and shares of a population (command-line tunable).
#[derive(Debug, Clone)]
pub struct Params {
    pub customers: usize,
    pub returning_share: f64,
    /// Of the returning customers: now on a mobile carrier's network.
    pub moved_share: f64,
    pub mistype_share: f64,
    pub office: usize,
    pub leaked_customers: usize,
    /// Accounts that do not log in during the scenario (breach victims).
    pub dormant: usize,
    /// Share of a breach's pairs that open a real account here.
    pub hit_rate: f64,
    /// Share of a breach's usernames that exist here.
    pub exist_rate: f64,
    pub known_breach_size: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            customers: 400,
            returning_share: 0.8,
            moved_share: 0.5,
            mistype_share: 0.1,
            office: 25,
            leaked_customers: 10,
            dormant: 3000,
            hit_rate: 0.03,
            exist_rate: 0.3,
            known_breach_size: 20_000,
        }
    }
}

/// How a real person arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    /// Logged in before from home, same browser, same network.
    ReturningHome,
    /// Logged in before from home, same browser, now on the carrier.
    ReturningMoved,
    /// A first login from this browser.
    FirstTime,
    /// Behind the office NAT, logged in before from there.
    Office,
    /// Their current password is in the known breach.
    Leaked,
}

impl Kind {
    pub fn returning(self) -> bool {
        matches!(
            self,
            Self::ReturningHome | Self::ReturningMoved | Self::Office
        )
    }
}

/// One real person.
#[derive(Debug, Clone)]
pub struct Person {
    pub kind: Kind,
    pub username: String,
    pub password: String,
    pub mistypes: bool,
    /// Where they logged in before (warm-up), if they did.
    pub home: IpAddr,
    /// Where they log in during the campaign.
    pub now: IpAddr,
    pub fingerprint: &'static str,
}

/// A breach entry, and whether it opens an account here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub username: String,
    pub password: String,
    pub valid: bool,
}

pub struct Population {
    pub accounts: HashMap<String, String>,
    pub people: Vec<Person>,
    pub known_breach: Vec<Pair>,
    /// Passwords known leaked (the passwords filter): the known breach's
    /// and the common ones.
    pub leaked_passwords: Vec<String>,
    dormant: Vec<String>,
    exposed: HashSet<String>,
}

/// Passwords a sprayer tries everywhere; some dormant accounts use them.
pub const COMMON_PASSWORDS: [&str; 5] = [
    "Password1!",
    "Summer2024!",
    "Welcome123",
    "Qwerty123!",
    "Football1",
];

/// The office NAT, and the carrier /24 that moved customers share.
pub const OFFICE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const CARRIER_ADDRESSES: u8 = 40;

pub fn carrier_address(rng: &mut Rng) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        198,
        51,
        100,
        1 + rng.below(CARRIER_ADDRESSES as usize) as u8,
    ))
}

/// A home or botnet address: anywhere in unicast IPv4, away from the
/// ranges the scenario reserves (loopback, private, the carrier, the office).
pub fn residential_address(rng: &mut Rng) -> IpAddr {
    loop {
        let octets = (rng.next_u64() as u32).to_be_bytes();
        let reserved = matches!(octets[0], 0 | 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203)
            || octets[0] >= 224;
        if !reserved {
            return IpAddr::V4(Ipv4Addr::from(octets));
        }
    }
}

impl Population {
    pub fn draw(params: &Params, rng: &mut Rng) -> Self {
        let mut population = Self {
            accounts: HashMap::new(),
            people: Vec::new(),
            known_breach: Vec::new(),
            leaked_passwords: COMMON_PASSWORDS.iter().map(|p| p.to_string()).collect(),
            dormant: Vec::new(),
            exposed: HashSet::new(),
        };
        population.add_dormant(params, rng);
        population.add_people(params, rng);
        population.add_known_breach(params, rng);
        population
    }

    fn add_dormant(&mut self, params: &Params, rng: &mut Rng) {
        for i in 0..params.dormant {
            let username = format!("member{i}.{}@mail.example", rng.token(4));
            // Some people use a password every sprayer tries.
            let password = if rng.chance(0.01) {
                rng.pick(&COMMON_PASSWORDS).to_string()
            } else {
                rng.token(12)
            };
            self.accounts.insert(username.clone(), password);
            self.dormant.push(username);
        }
    }

    fn add_people(&mut self, params: &Params, rng: &mut Rng) {
        let returning = (params.customers as f64 * params.returning_share).round() as usize;
        let moved = (returning as f64 * params.moved_share).round() as usize;
        for i in 0..params.customers {
            let kind = match i {
                i if i < moved => Kind::ReturningMoved,
                i if i < returning => Kind::ReturningHome,
                _ => Kind::FirstTime,
            };
            self.add_person(kind, format!("customer{i}"), params, rng);
        }
        for i in 0..params.office {
            self.add_person(Kind::Office, format!("staff{i}"), params, rng);
        }
        for i in 0..params.leaked_customers {
            self.add_person(Kind::Leaked, format!("reused{i}"), params, rng);
        }
    }

    fn add_person(&mut self, kind: Kind, name: String, params: &Params, rng: &mut Rng) {
        let home = match kind {
            Kind::Office => OFFICE,
            _ => residential_address(rng),
        };
        let now = match kind {
            Kind::ReturningMoved => carrier_address(rng),
            // Half of the first-time customers are on the carrier too.
            Kind::FirstTime if rng.chance(0.5) => carrier_address(rng),
            _ => home,
        };
        let person = Person {
            kind,
            username: format!("{name}.{}@mail.example", rng.token(4)),
            password: rng.token(12),
            mistypes: rng.chance(params.mistype_share),
            home,
            now,
            fingerprint: BROWSER_FINGERPRINTS[rng.below(BROWSER_FINGERPRINTS.len())],
        };
        self.accounts
            .insert(person.username.clone(), person.password.clone());
        self.people.push(person);
    }

    /// The breach in credgate's filter: the leaked customers' pairs, pairs
    /// of dormant accounts (`hit_rate` of them right), and strangers.
    fn add_known_breach(&mut self, params: &Params, rng: &mut Rng) {
        let leaked: Vec<Pair> = self
            .people
            .iter()
            .filter(|p| p.kind == Kind::Leaked)
            .map(|p| Pair {
                username: p.username.clone(),
                password: p.password.clone(),
                valid: true,
            })
            .collect();
        self.known_breach.extend(leaked);
        while self.known_breach.len() < params.known_breach_size {
            let pair = self.draw_pair(params, rng, true);
            if pair.valid {
                self.exposed.insert(pair.username.clone());
            }
            self.known_breach.push(pair);
        }
        let passwords = self.known_breach.iter().map(|p| p.password.clone());
        self.leaked_passwords.extend(passwords);
        rng.shuffle(&mut self.known_breach);
    }

    /// A breach the filter has never seen: `size` pairs, `hit_rate` of them
    /// right for an account here (never one the known breach exposed, whose
    /// pair the filter would block).
    pub fn unknown_breach(&self, size: usize, params: &Params, rng: &mut Rng) -> Vec<Pair> {
        (0..size)
            .map(|_| self.draw_pair(params, rng, false))
            .collect()
    }

    fn draw_pair(&self, params: &Params, rng: &mut Rng, known: bool) -> Pair {
        if !rng.chance(params.exist_rate) {
            return Pair {
                username: format!("{}{}@elsewhere.example", rng.token(6), rng.below(999)),
                password: rng.token(10),
                valid: false,
            };
        }
        let username = self.breached_username(rng, known);
        let valid = rng.chance(params.hit_rate / params.exist_rate);
        let password = match valid {
            true => self.accounts[&username].clone(),
            false => rng.token(10),
        };
        Pair {
            username,
            password,
            valid,
        }
    }

    /// An existing username for a breach: dormant accounts and the people
    /// who log in today alike (the office and the leaked aside, which the
    /// scenario follows separately). The known breach holds only dormant
    /// accounts (and the leaked customers): a customer whose right pair
    /// is in the filter is a leaked customer, followed as such.
    fn breached_username(&self, rng: &mut Rng, known: bool) -> String {
        loop {
            let username = if known || rng.chance(0.8) {
                rng.pick(&self.dormant).clone()
            } else {
                let person = rng.pick(&self.people);
                if !matches!(person.kind, Kind::Office | Kind::Leaked) {
                    person.username.clone()
                } else {
                    continue;
                }
            };
            if known || !self.exposed.contains(&username) {
                return username;
            }
        }
    }

    /// Usernames that exist here, for a sprayer's scraped list.
    pub fn some_usernames(&self, count: usize, rng: &mut Rng) -> Vec<String> {
        (0..count)
            .map(|_| self.breached_username(rng, false))
            .collect()
    }

    /// Adds accounts the attackers registered themselves (to collect real
    /// cookies); returns their pairs.
    pub fn add_attacker_accounts(&mut self, count: usize, rng: &mut Rng) -> Vec<Pair> {
        (0..count)
            .map(|i| {
                let pair = Pair {
                    username: format!("buyer{i}.{}@burner.example", rng.token(5)),
                    password: rng.token(12),
                    valid: true,
                };
                self.accounts
                    .insert(pair.username.clone(), pair.password.clone());
                pair
            })
            .collect()
    }
}
