//! Attack mode: is a login route under a distributed attack right now?
//!
//! Per-client limits and bans stop one client; a credential-stuffing run
//! spread over thousands of addresses stays under each of them. What it
//! cannot hide is the route's stream as a whole: far more failed logins
//! than usual, most attempts failing. This module watches that stream.
//!
//! The request path only counts ([`AttackMode::record`], two relaxed atomic
//! additions) and reads a flag ([`AttackMode::is_on`]). Once a second the
//! server's maintenance loop calls [`AttackMode::tick`], which drains the
//! counts and runs [`Detector::evaluate`], a pure function of the counts,
//! the elapsed time and the rules, tested with synthetic time.
//!
//! An operator may force a route's mode on or off ([`AttackMode::force`]);
//! with a shared backend, modes detected or forced on one replica reach the
//! others through [`AttackMode::share`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config;
use crate::route::Routes;

/// What an operator asked of a route's attack mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The detector decides.
    #[default]
    Auto,
    /// Forced on.
    On,
    /// Forced off.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            1 => Self::On,
            2 => Self::Off,
            _ => Self::Auto,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Auto => 0,
            Self::On => 1,
            Self::Off => 2,
        }
    }
}

/// A route name that no `[[login]]` has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no login route is named {name:?}")]
pub struct UnknownRoute {
    pub name: String,
}

/// The switching rules, from `[attack]`, in the units the detector uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub enabled: bool,
    /// Failures per second.
    pub floor: f64,
    pub factor: f64,
    pub ratio: f64,
    /// Seconds.
    pub window: f64,
    /// Seconds.
    pub baseline_window: f64,
    pub release: f64,
    pub hold: Duration,
}

impl From<&config::Attack> for Rules {
    fn from(c: &config::Attack) -> Self {
        Self {
            enabled: c.enabled,
            floor: c.min_failure_rate,
            factor: c.baseline_factor,
            ratio: c.failure_ratio,
            window: c.window.0.as_secs_f64(),
            baseline_window: c.baseline_window.0.as_secs_f64(),
            release: c.release,
            hold: c.hold.0,
        }
    }
}

/// What one route saw since the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Attempts the shop answered (or, unparsed, that reached it), and
    /// leaked pairs blocked before it (counted as failures).
    pub attempts: u64,
    pub failures: u64,
    pub elapsed: Duration,
}

/// One route's detector: everything [`Detector::evaluate`] keeps from one
/// tick to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Detector {
    /// Failed logins per second, averaged over the window.
    pub failure_rate: f64,
    /// Answered attempts per second, averaged over the window.
    pub attempt_rate: f64,
    /// The route's usual failure rate, learned while attack mode is off.
    pub baseline: f64,
    /// Whether the detector sees an attack.
    pub on: bool,
    /// How long the rate has been under the release threshold, while on.
    pub quiet: Duration,
}

// === impl Detector ===

impl Detector {
    /// Folds one tick's counts in and returns whether the route is under
    /// attack. On when the failure rate exceeds [`Detector::threshold`] and
    /// more than `rules.ratio` of attempts fail, over the window or in the
    /// last tick alone (which must then exceed the threshold by itself);
    /// off once the rate has stayed under `release × threshold` for
    /// `hold`. The baseline learns only while off, so an attack is never
    /// learned as normal.
    ///
    /// The last tick's share matters when a campaign starts right after a
    /// busy, mostly successful period (an evening peak): the window still
    /// remembers the peak's successes, and its share of failures lags the
    /// campaign by seconds, each of which lets right pairs through.
    pub fn evaluate(&mut self, counts: Counts, rules: &Rules) -> bool {
        let dt = counts.elapsed.as_secs_f64();
        if dt <= 0.0 || !rules.enabled {
            self.on &= rules.enabled;
            return self.on;
        }
        let failures = counts.failures as f64 / dt;
        let attempts = counts.attempts as f64 / dt;
        let fast = 1.0 - (-dt / rules.window).exp();
        self.failure_rate += fast * (failures - self.failure_rate);
        self.attempt_rate += fast * (attempts - self.attempt_rate);
        let threshold = self.threshold(rules);
        let tick_failing = failures > threshold && failures > rules.ratio * attempts;
        if !self.on {
            let failing = self.failure_ratio() > rules.ratio || tick_failing;
            if self.failure_rate > threshold && failing {
                self.on = true;
                self.quiet = Duration::ZERO;
            } else {
                let slow = 1.0 - (-dt / rules.baseline_window).exp();
                self.baseline += slow * (failures - self.baseline);
            }
        } else if self.failure_rate < rules.release * threshold {
            self.quiet += counts.elapsed;
            if self.quiet >= rules.hold {
                self.on = false;
                self.quiet = Duration::ZERO;
            }
        } else {
            self.quiet = Duration::ZERO;
        }
        self.on
    }

    /// The failure rate above which the route is under attack: the floor,
    /// or `factor` times the baseline if that is higher.
    pub fn threshold(&self, rules: &Rules) -> f64 {
        rules.floor.max(rules.factor * self.baseline)
    }

    /// The share of attempts that failed, over the window.
    pub fn failure_ratio(&self) -> f64 {
        match self.attempt_rate > 0.0 {
            true => (self.failure_rate / self.attempt_rate).min(1.0),
            false => 0.0,
        }
    }
}

/// What another replica said about a route, through the shared backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedMode {
    /// Some replica detects an attack on it.
    pub detected: bool,
    /// What an operator forced, on any replica.
    pub mode: Mode,
}

/// A route's attack mode, as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteStatus {
    pub route: String,
    /// What the operator asked: auto, on or off.
    pub mode: Mode,
    /// The answer the risk stage gets.
    pub on: bool,
    /// Whether this replica's detector sees an attack, forced or not.
    pub detected: bool,
    /// Why: `forced`, `detected` (here), `shared` (another replica) or
    /// `none`.
    pub source: &'static str,
    pub failure_rate: f64,
    pub failure_ratio: f64,
    pub baseline: f64,
    pub threshold: f64,
}

/// Attack mode for every login route. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct AttackMode {
    /// Swapped whole when a reload changes the login routes or `[attack]`.
    inner: Arc<ArcSwap<Inner>>,
}

#[derive(Debug)]
struct Inner {
    rules: Rules,
    routes: Vec<Route>,
    // A std Mutex: only the once-a-second tick and the admin API take it,
    // never a request.
    ticking: Mutex<Ticking>,
}

/// One route's counters and flags: what requests touch.
#[derive(Debug)]
struct Route {
    name: String,
    attempts: AtomicU64,
    failures: AtomicU64,
    /// The answer of [`AttackMode::is_on`].
    on: AtomicBool,
    /// [`Mode`] as a number.
    mode: AtomicU8,
    shared_detected: AtomicBool,
}

#[derive(Debug)]
struct Ticking {
    last: Instant,
    detectors: Vec<Detector>,
}

// === impl AttackMode ===

impl AttackMode {
    /// Attack mode off, in auto, for every login route.
    pub fn new(config: &config::Attack, routes: &Routes) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(Inner::new(config, routes))),
        }
    }

    /// Applies reloaded login routes and `[attack]` rules. A route that
    /// keeps its name keeps its learned baseline, its counters and what an
    /// operator forced; a new route starts in auto. A request in flight
    /// across the swap may count on the route that now has its index.
    pub fn reconfigure(&self, config: &config::Attack, routes: &Routes) {
        let old = self.inner.load();
        let new = Inner::new(config, routes);
        {
            let old_ticking = ticking(&old);
            let mut ticking = ticking(&new);
            for (route, detector) in new.routes.iter().zip(&mut ticking.detectors) {
                let Some(i) = old.routes.iter().position(|r| r.name == route.name) else {
                    continue;
                };
                let was = &old.routes[i];
                for (to, from) in [
                    (&route.attempts, &was.attempts),
                    (&route.failures, &was.failures),
                ] {
                    to.store(from.load(Relaxed), Relaxed);
                }
                route.mode.store(was.mode.load(Relaxed), Relaxed);
                let shared = was.shared_detected.load(Relaxed);
                route.shared_detected.store(shared, Relaxed);
                if let Some(learned) = old_ticking.detectors.get(i) {
                    *detector = *learned;
                }
            }
            ticking.last = old_ticking.last;
        }
        self.inner.store(Arc::new(new));
        self.settle();
    }

    /// Counts an attempt on route `route`: `failed` is what the shop's
    /// answer said (`None`: no answer to go by, not counted).
    pub fn record(&self, route: usize, failed: Option<bool>) {
        let inner = self.inner.load();
        let (Some(route), Some(failed)) = (inner.routes.get(route), failed) else {
            return;
        };
        route.attempts.fetch_add(1, Relaxed);
        if failed {
            route.failures.fetch_add(1, Relaxed);
        }
    }

    /// Returns true if and only if route `route` is in attack mode: forced
    /// on, or, in auto, detected here or by another replica.
    pub fn is_on(&self, route: usize) -> bool {
        self.inner
            .load()
            .routes
            .get(route)
            .is_some_and(|r| r.on.load(Relaxed))
    }

    /// [`AttackMode::is_on`] of every route, in index order.
    pub fn each_on(&self) -> Vec<bool> {
        let inner = self.inner.load();
        inner.routes.iter().map(|r| r.on.load(Relaxed)).collect()
    }

    /// The routes' names, in index order.
    pub fn routes(&self) -> Vec<String> {
        let inner = self.inner.load();
        inner.routes.iter().map(|r| r.name.clone()).collect()
    }

    /// Evaluates every route with what it saw since the last tick. Returns
    /// what this replica detects, per route, for the shared backend.
    pub fn tick(&self, now: Instant) -> Vec<bool> {
        let inner = self.inner.load();
        let mut ticking = ticking(&inner);
        let elapsed = now.saturating_duration_since(ticking.last);
        ticking.last = now;
        let rules = &inner.rules;
        let mut detected = Vec::with_capacity(inner.routes.len());
        for (route, detector) in inner.routes.iter().zip(&mut ticking.detectors) {
            let counts = Counts {
                attempts: route.attempts.swap(0, Relaxed),
                failures: route.failures.swap(0, Relaxed),
                elapsed,
            };
            let was = detector.on;
            let on = detector.evaluate(counts, rules);
            if on != was {
                tracing::warn!(
                    route = route.name,
                    attack_mode = on,
                    failures_per_second = detector.failure_rate,
                    baseline = detector.baseline,
                    "attack mode detected {}",
                    if on { "on" } else { "off" }
                );
            }
            detected.push(on);
        }
        drop(ticking);
        self.settle();
        detected
    }

    /// Takes in what the shared backend says, per route, in index order.
    pub fn share(&self, shared: &[SharedMode]) {
        for (route, shared) in self.inner.load().routes.iter().zip(shared) {
            route.shared_detected.store(shared.detected, Relaxed);
            route.mode.store(shared.mode.to_u8(), Relaxed);
        }
        self.settle();
    }

    /// Forces `route` (every route with `None`) on or off, or hands it back
    /// to the detector.
    pub fn force(&self, route: Option<&str>, mode: Mode) -> Result<(), UnknownRoute> {
        let inner = self.inner.load();
        let routes = &inner.routes;
        let chosen: Vec<&Route> = match route {
            None => routes.iter().collect(),
            Some(name) => vec![routes
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| UnknownRoute { name: name.into() })?],
        };
        for route in chosen {
            route.mode.store(mode.to_u8(), Relaxed);
            tracing::warn!(
                route = route.name,
                mode = mode.as_str(),
                "attack mode forced"
            );
        }
        self.settle();
        Ok(())
    }

    /// What an operator forced, per route, in index order.
    pub fn modes(&self) -> Vec<Mode> {
        let inner = self.inner.load();
        let routes = &inner.routes;
        routes
            .iter()
            .map(|r| Mode::from_u8(r.mode.load(Relaxed)))
            .collect()
    }

    /// Every route's mode, answer and rates.
    pub fn status(&self) -> Vec<RouteStatus> {
        let inner = self.inner.load();
        let ticking = ticking(&inner);
        let rules = &inner.rules;
        let routes = inner.routes.iter().zip(&ticking.detectors);
        routes
            .map(|(route, detector)| {
                let mode = Mode::from_u8(route.mode.load(Relaxed));
                let shared = route.shared_detected.load(Relaxed);
                RouteStatus {
                    route: route.name.clone(),
                    mode,
                    on: route.on.load(Relaxed),
                    detected: detector.on,
                    source: match (mode, detector.on, shared) {
                        (Mode::On | Mode::Off, _, _) => "forced",
                        (Mode::Auto, true, _) => "detected",
                        (Mode::Auto, false, true) => "shared",
                        (Mode::Auto, false, false) => "none",
                    },
                    failure_rate: detector.failure_rate,
                    failure_ratio: detector.failure_ratio(),
                    baseline: detector.baseline,
                    threshold: detector.threshold(rules),
                }
            })
            .collect()
    }

    /// Sets each route's answer from its mode, its detector and the other
    /// replicas.
    fn settle(&self) {
        let inner = self.inner.load();
        let ticking = ticking(&inner);
        for (route, detector) in inner.routes.iter().zip(&ticking.detectors) {
            let on = match Mode::from_u8(route.mode.load(Relaxed)) {
                Mode::On => true,
                Mode::Off => false,
                Mode::Auto => detector.on || route.shared_detected.load(Relaxed),
            };
            route.on.store(on, Relaxed);
        }
    }
}

// === impl Inner ===

impl Inner {
    fn new(config: &config::Attack, routes: &Routes) -> Self {
        let routes: Vec<Route> = routes
            .logins()
            .iter()
            .map(|r| Route {
                name: r.name.clone(),
                attempts: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                on: AtomicBool::new(false),
                mode: AtomicU8::new(Mode::Auto.to_u8()),
                shared_detected: AtomicBool::new(false),
            })
            .collect();
        let ticking = Ticking {
            last: Instant::now(),
            detectors: vec![Detector::default(); routes.len()],
        };
        Self {
            rules: Rules::from(config),
            routes,
            ticking: Mutex::new(ticking),
        }
    }
}

fn ticking(inner: &Inner) -> MutexGuard<'_, Ticking> {
    inner.ticking.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
