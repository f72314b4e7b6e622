//! The figures of a scenario, each with its exact numerator and
//! denominator and the goal of issue 11, printed as tables or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::attack::{Breach, Crew, CrewStats, Shape};
use crate::people::Story;
use crate::population::Kind;
use crate::scenario::Switch;
use crate::shop::Received;

/// `num` of `den`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Ratio {
    pub num: u64,
    pub den: u64,
}

impl Ratio {
    fn of<T>(items: &[T], counted: impl Fn(&T) -> bool) -> Self {
        Self {
            num: items.iter().filter(|i| counted(i)).count() as u64,
            den: items.len() as u64,
        }
    }

    pub fn percent(self) -> f64 {
        match self.den {
            0 => 100.0,
            den => 100.0 * self.num as f64 / den as f64,
        }
    }

    fn show(self) -> String {
        format!("{:.1}% ({}/{})", self.percent(), self.num, self.den)
    }
}

/// The headline figures (see the README for their exact meaning).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    /// Valid unknown-breach pairs not taken over / valid unknown-breach pairs.
    pub unknown_prevented: Ratio,
    /// Valid known-breach pairs taken over.
    pub known_takeovers: u64,
    /// Attack login attempts the shop answered / attack login attempts sent.
    pub attacks_reaching_shop: Ratio,
    /// Customers (returning, first-time, office) with a session / all of them.
    pub customers_in: Ratio,
    /// Returning customers (incl. office) who met a 429, 403 or step-up.
    pub returning_friction: Ratio,
    /// First-time customers asked for a step-up.
    pub first_time_step_up: Ratio,
    /// 429 and 403 answers the office NAT's people got (warm-up included).
    pub office_refusals: u64,
    /// Leaked-password customers in after their reset / all of them.
    pub leaked_in_after_reset: Ratio,
    /// Warm-up logins that did not get in (each spoils a returning customer).
    pub warm_up_failures: u64,
    /// Step-ups the shop asked of attackers (each a prevented takeover).
    pub attacker_step_ups: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CrewReport {
    pub shape: &'static str,
    pub breach: &'static str,
    #[serde(flatten)]
    pub stats: CrewStats,
}

/// Everything measured in one scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measure {
    pub seed: u64,
    pub shape: String,
    pub figures: Figures,
    /// People who did not get in, by kind and cause ("FirstTime: 429
    /// untrusted budget after waiting out a 429 untrusted budget").
    pub not_in: BTreeMap<String, u64>,
    /// Friction returning people met during the campaign, by kind and
    /// cause, each time.
    pub returning_friction_met: BTreeMap<String, u64>,
    pub crews: Vec<CrewReport>,
    pub shop_received: BTreeMap<String, Received>,
    pub metrics: Vec<(String, f64)>,
    /// When attack mode switched on and off, from the admin API.
    pub attack_mode: Vec<Switch>,
    pub credgate_warnings: u64,
    pub seconds: f64,
}

impl Measure {
    #[allow(clippy::too_many_arguments)] // plain data in, one call site
    pub fn new(
        seed: u64,
        shapes: &[Shape],
        crews: &[Arc<Crew>],
        stories: &[Story],
        shop_received: BTreeMap<String, Received>,
        metrics: Vec<(String, f64)>,
        attack_mode: Vec<Switch>,
        credgate_warnings: u64,
        took: Duration,
    ) -> Self {
        let crews: Vec<CrewReport> = crews
            .iter()
            .map(|c| CrewReport {
                shape: c.shape.name(),
                breach: c.breach.actor(),
                stats: c.stats(),
            })
            .collect();
        Self {
            seed,
            shape: shape_name(shapes),
            figures: figures(&crews, stories),
            not_in: causes(stories),
            returning_friction_met: friction_met(stories),
            crews,
            shop_received,
            metrics,
            attack_mode,
            credgate_warnings,
            seconds: took.as_secs_f64(),
        }
    }
}

pub fn shape_name(shapes: &[Shape]) -> String {
    match shapes.len() {
        n if n == Shape::ALL.len() => "all".to_owned(),
        _ => shapes
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join("+"),
    }
}

fn figures(crews: &[CrewReport], stories: &[Story]) -> Figures {
    let of = |breach: Breach| crews.iter().filter(move |c| c.breach == breach.actor());
    let valid: usize = of(Breach::Unknown).map(|c| c.stats.valid_pairs).sum();
    let taken: usize = of(Breach::Unknown).map(|c| c.stats.takeovers).sum();
    let kinds = |wanted: &dyn Fn(Kind) -> bool| -> Vec<Story> {
        stories.iter().filter(|s| wanted(s.kind)).cloned().collect()
    };
    let customers = kinds(&|k| k != Kind::Leaked);
    Figures {
        unknown_prevented: Ratio {
            num: (valid - taken) as u64,
            den: valid as u64,
        },
        known_takeovers: of(Breach::Known).map(|c| c.stats.takeovers as u64).sum(),
        attacks_reaching_shop: Ratio {
            num: crews.iter().map(|c| c.stats.reached_shop).sum(),
            den: crews.iter().map(|c| c.stats.attempts).sum(),
        },
        customers_in: Ratio::of(&customers, |s| s.got_in),
        returning_friction: Ratio::of(&kinds(&Kind::returning), |s| s.friction),
        first_time_step_up: Ratio::of(&kinds(&|k| k == Kind::FirstTime), |s| s.step_up),
        office_refusals: kinds(&|k| k == Kind::Office)
            .iter()
            .map(|s| u64::from(s.refusals))
            .sum(),
        leaked_in_after_reset: Ratio::of(&kinds(&|k| k == Kind::Leaked), |s| s.got_in),
        warm_up_failures: stories.iter().filter(|s| s.warm_up_failed).count() as u64,
        attacker_step_ups: crews.iter().map(|c| c.stats.step_ups).sum(),
    }
}

fn causes(stories: &[Story]) -> BTreeMap<String, u64> {
    let mut causes = BTreeMap::new();
    for s in stories.iter().filter(|s| !s.got_in) {
        let why = s.why_not_in.as_deref().unwrap_or("no visit");
        *causes.entry(format!("{:?}: {why}", s.kind)).or_default() += 1;
    }
    causes
}

fn friction_met(stories: &[Story]) -> BTreeMap<String, u64> {
    let mut met = BTreeMap::new();
    for s in stories.iter().filter(|s| s.kind.returning()) {
        for why in &s.met {
            *met.entry(format!("{:?}: {why}", s.kind)).or_default() += 1;
        }
    }
    met
}

/// One figure's line: its value, the goal and whether it is met.
struct Line {
    name: &'static str,
    value: String,
    goal: &'static str,
    pass: Option<bool>,
}

fn lines(f: &Figures) -> Vec<Line> {
    let line = |name, value, goal, pass| Line {
        name,
        value,
        goal,
        pass,
    };
    let all_in = f.leaked_in_after_reset.num == f.leaked_in_after_reset.den;
    vec![
        line(
            "unknown-breach takeovers prevented",
            f.unknown_prevented.show(),
            ">= 90%",
            Some(f.unknown_prevented.percent() >= 90.0),
        ),
        line(
            "known-breach takeovers",
            f.known_takeovers.to_string(),
            "0",
            Some(f.known_takeovers == 0),
        ),
        line(
            "attack attempts reaching the shop",
            f.attacks_reaching_shop.show(),
            "(lower is better)",
            None,
        ),
        line(
            "real customers in",
            f.customers_in.show(),
            ">= 99.5%",
            Some(f.customers_in.percent() >= 99.5),
        ),
        line(
            "returning customers with friction",
            f.returning_friction.show(),
            "<= 5%",
            Some(f.returning_friction.percent() <= 5.0),
        ),
        line(
            "first-time devices asked a step-up",
            f.first_time_step_up.show(),
            "(report)",
            None,
        ),
        line(
            "office NAT refusals (429/403)",
            f.office_refusals.to_string(),
            "0",
            Some(f.office_refusals == 0),
        ),
        line(
            "leaked customers in after reset",
            f.leaked_in_after_reset.show(),
            "all",
            Some(all_in),
        ),
        line(
            "warm-up logins that failed",
            f.warm_up_failures.to_string(),
            "0",
            Some(f.warm_up_failures == 0),
        ),
        line(
            "step-ups asked of attackers",
            f.attacker_step_ups.to_string(),
            "(report)",
            None,
        ),
    ]
}

/// The detailed table of one scenario.
pub fn detail(m: &Measure) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== seed {} · shape {} · {:.0} s ==",
        m.seed, m.shape, m.seconds
    );
    let _ = writeln!(
        out,
        "{:<38} {:<22} {:<18} result",
        "figure", "value", "goal"
    );
    for l in lines(&m.figures) {
        let verdict = match l.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "",
        };
        let _ = writeln!(
            out,
            "{:<38} {:<22} {:<18} {verdict}",
            l.name, l.value, l.goal
        );
    }
    let _ = writeln!(out, "\nwhy people did not get in (kind: cause):");
    if m.not_in.is_empty() {
        let _ = writeln!(out, "  (everyone got in)");
    }
    for (cause, n) in &m.not_in {
        let _ = writeln!(out, "  {n:>4}  {cause}");
    }
    let _ = writeln!(
        out,
        "friction returning people met in the campaign (kind: cause, each time):"
    );
    for (cause, n) in &m.returning_friction_met {
        let _ = writeln!(out, "  {n:>4}  {cause}");
    }
    let _ = writeln!(
        out,
        "\n{:<15} {:<15} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7}",
        "crew",
        "breach",
        "attempts",
        "at shop",
        "429",
        "403ban",
        "leaked",
        "stepup",
        "valid",
        "taken"
    );
    for c in &m.crews {
        let s = &c.stats;
        let _ = writeln!(
            out,
            "{:<15} {:<15} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7}",
            c.shape,
            c.breach,
            s.attempts,
            s.reached_shop,
            s.throttled,
            s.banned,
            s.leaked_blocks,
            s.step_ups,
            s.valid_pairs,
            s.takeovers
        );
    }
    let _ = writeln!(out, "\ntimeline (seconds from the campaign's start):");
    let switches: Vec<String> = m
        .attack_mode
        .iter()
        .map(|s| format!("{} at {:.1}", if s.on { "on" } else { "off" }, s.secs))
        .collect();
    let _ = writeln!(
        out,
        "  attack mode: {}",
        match switches.is_empty() {
            true => "never on".to_owned(),
            false => switches.join(", "),
        }
    );
    for c in m.crews.iter().filter(|c| !c.stats.takeover_secs.is_empty()) {
        let at: Vec<String> = c
            .stats
            .takeover_secs
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect();
        let _ = writeln!(
            out,
            "  {} {} takeovers at: {}",
            c.shape,
            c.breach,
            at.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\nshop received (logins; Credgate-Risk medium/high; Credgate-Leaked; step-ups asked; sessions opened without Credgate-Risk/at medium):"
    );
    for (actor, r) in &m.shop_received {
        let _ = writeln!(
            out,
            "  {actor:<15} {:>6}; {}/{}; {}; {}; {}/{}",
            r.logins,
            r.risk_medium,
            r.risk_high,
            r.leaked_annotated,
            r.step_ups_asked,
            r.sessions_unannotated,
            r.sessions_at_medium
        );
    }
    let _ = writeln!(out, "credgate metrics (non-zero):");
    for (series, value) in &m.metrics {
        let _ = writeln!(out, "  {series} {value}");
    }
    let _ = writeln!(
        out,
        "credgate warnings/errors logged: {}",
        m.credgate_warnings
    );
    out
}

/// One row per scenario, the headline figures side by side.
pub fn summary(measures: &[Measure]) -> String {
    let mut out = String::from("\n== summary (goal: prevented >= 90%, known 0, customers in >= 99.5%, friction <= 5%, office 0, leaked all) ==\n");
    let _ = writeln!(
        out,
        "{:<5} {:<15} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>5}",
        "seed",
        "shape",
        "prevented",
        "known",
        "at shop",
        "cust in",
        "friction",
        "1st s-up",
        "office",
        "leaked",
        "ok"
    );
    for m in measures {
        let f = &m.figures;
        let pass = lines(f).iter().all(|l| l.pass != Some(false));
        let _ = writeln!(
            out,
            "{:<5} {:<15} {:>9.1}% {:>6} {:>8.1}% {:>8.1}% {:>8.1}% {:>9} {:>7} {:>8} {:>5}",
            m.seed,
            m.shape,
            f.unknown_prevented.percent(),
            f.known_takeovers,
            f.attacks_reaching_shop.percent(),
            f.customers_in.percent(),
            f.returning_friction.percent(),
            format!("{}/{}", f.first_time_step_up.num, f.first_time_step_up.den),
            f.office_refusals,
            format!(
                "{}/{}",
                f.leaked_in_after_reset.num, f.leaked_in_after_reset.den
            ),
            if pass { "PASS" } else { "FAIL" }
        );
    }
    out
}
