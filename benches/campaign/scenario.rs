//! One scenario from seed to measure: draw the population and the crews,
//! build the filters, start the shop and credgate, warm the returning
//! customers up, replay the campaign, and collect what happened.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attack::{Crew, Shape, Tactics};
use crate::browser::Http;
use crate::gate::{self, Gate};
use crate::people::{Customer, Story};
use crate::population::{Params, Population};
use crate::report::Measure;
use crate::rng::Rng;
use crate::shop::{Shop, StepUpPolicy};

/// Everything a run is parameterised by, besides the seed and the shapes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub params: Params,
    pub tactics: Tactics,
    pub step_up: StepUpPolicy,
    /// The campaign's length; customers arrive and bots attack within it.
    pub campaign: Duration,
    /// The earlier visits of returning customers, before the campaign.
    pub warm_up: Duration,
    /// A TOML fragment merged into the generated config (`--config`).
    pub extra_config: Option<String>,
}

/// Runs one scenario against a fresh credgate.
pub async fn run(seed: u64, shapes: &[Shape], settings: &Settings) -> anyhow::Result<Measure> {
    let began = std::time::Instant::now();
    let rng = Rng::new(seed);
    let mut population = Population::draw(&settings.params, &mut rng.fork(1));
    let crews: Vec<Arc<Crew>> = shapes
        .iter()
        .enumerate()
        .flat_map(|(i, shape)| {
            let mut rng = rng.fork(100 + i as u64);
            let params = &settings.params;
            Crew::pair_for(*shape, &mut population, params, settings.tactics, &mut rng)
        })
        .map(Arc::new)
        .collect();
    let (_dir, dir) = gate::workdir()?;
    prepare_files(&dir, &population)?;
    let shop = Arc::new(Shop::start(population.accounts.clone(), settings.step_up).await?);
    let config = gate::config(&dir, shop.addr(), settings.extra_config.as_deref())?;
    std::fs::write(dir.join("credgate.toml"), &config)?;
    let credgate = Gate::start(&dir.join("credgate.toml"))?;
    let http = Http::new();
    gate::wait_ready(&http, credgate.admin).await?;

    let customers = warm_up(&population, &http, &credgate, &rng, settings).await;
    let mut jars = Vec::new();
    for crew in &crews {
        jars.push(crew.harvest_cookies(&http, credgate.plain).await);
    }
    let (stories, attack_mode) = campaign(
        customers, &crews, jars, &http, &credgate, &shop, &rng, settings,
    )
    .await;

    let metrics = gate::scrape(&http, credgate.admin)
        .await
        .with_context(|| credgate.log_tail())?;
    Ok(Measure::new(
        seed,
        shapes,
        &crews,
        &stories,
        shop.received(),
        metrics,
        attack_mode,
        credgate.warnings(),
        began.elapsed(),
    ))
}

/// The filters from the population's breaches, built by the binary.
fn prepare_files(dir: &std::path::Path, population: &Population) -> anyhow::Result<()> {
    gate::write_certificate(dir)?;
    let pairs: Vec<String> = population
        .known_breach
        .iter()
        .map(|p| format!("{}:{}", p.username, p.password))
        .collect();
    gate::build_filter(dir, "pairs", "pairs", &pairs)?;
    gate::build_filter(dir, "passwords", "passwords", &population.leaked_passwords)
}

/// Returning customers log in once from where they used to, spread over
/// the warm-up, and keep their browsers' cookies.
async fn warm_up(
    population: &Population,
    http: &Http,
    credgate: &Gate,
    rng: &Rng,
    settings: &Settings,
) -> Vec<Customer> {
    let mut schedule = rng.fork(2);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, person) in population.people.iter().enumerate() {
        let mut customer = Customer::new(
            person.clone(),
            http,
            credgate.plain,
            rng.fork(1000 + i as u64),
        );
        let at = start + settings.warm_up.mul_f64(schedule.unit());
        tasks.spawn(async move {
            if customer.warms_up() {
                tokio::time::sleep_until(at).await;
                customer.warm_up().await;
            }
            (i, customer)
        });
    }
    let mut customers: Vec<(usize, Customer)> = tasks.join_all().await;
    customers.sort_by_key(|(i, _)| *i);
    customers.into_iter().map(|(_, c)| c).collect()
}

/// The campaign: every crew attacks while every customer visits once, at
/// a random moment of it. Also returns when attack mode switched on and off.
#[allow(clippy::too_many_arguments)] // one call site, each a distinct part
async fn campaign(
    customers: Vec<Customer>,
    crews: &[Arc<Crew>],
    jars: Vec<Vec<crate::browser::Browser>>,
    http: &Http,
    credgate: &Gate,
    shop: &Arc<Shop>,
    rng: &Rng,
    settings: &Settings,
) -> (Vec<Story>, Vec<Switch>) {
    let start = Instant::now() + Duration::from_millis(500);
    let length = settings.campaign;
    let switches = Arc::new(std::sync::Mutex::new(Vec::new()));
    let watcher = tokio::spawn(watch_attack_mode(
        http.clone(),
        credgate.admin,
        start,
        switches.clone(),
    ));
    let mut attacks = JoinSet::new();
    for (crew, jars) in crews.iter().zip(jars) {
        let run = crew
            .clone()
            .run(http.clone(), credgate.plain, jars, start, length);
        attacks.spawn(run);
    }
    let mut schedule = rng.fork(3);
    let mut visits = JoinSet::new();
    for customer in customers {
        let at = start + length.mul_f64(schedule.between(0.02, 0.98));
        let shop = shop.clone();
        visits.spawn(async move {
            tokio::time::sleep_until(at).await;
            customer.visit(shop).await
        });
    }
    let stories = visits.join_all().await;
    attacks.join_all().await;
    watcher.abort();
    let switches = switches.lock().expect("switches").clone();
    (stories, switches)
}

/// Attack mode (on any route) switching on or off, seconds from the
/// campaign's start.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Switch {
    pub secs: f64,
    pub on: bool,
}

/// Scrapes `credgate_attack_mode` every 250 ms (the detector ticks once a
/// second) and records each change, so that a takeover can be set against
/// the detector's timing.
async fn watch_attack_mode(
    http: Http,
    admin: std::net::SocketAddr,
    start: Instant,
    switches: Arc<std::sync::Mutex<Vec<Switch>>>,
) {
    let mut was_on = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Ok(series) = gate::scrape(&http, admin).await else {
            continue;
        };
        let on = series
            .iter()
            .any(|(name, value)| name.starts_with("credgate_attack_mode") && *value > 0.0);
        if on != was_on {
            was_on = on;
            let secs = Instant::now()
                .saturating_duration_since(start)
                .as_secs_f64();
            switches.lock().expect("switches").push(Switch { secs, on });
        }
    }
}
