//! The campaign simulator: replays synthetic credential-stuffing campaigns
//! through the real `credgate` binary, on its defaults, in front of a
//! scripted shop, and measures takeovers prevented and the friction real
//! customers meet. See `README.md` beside this file.
//!
//! ```sh
//! cargo bench --bench campaign -- --seeds 1,2,3 --shape all
//! ```

mod attack;
mod browser;
mod gate;
mod people;
mod population;
mod report;
mod rng;
mod scenario;
mod shop;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;

use attack::{Shape, Tactics};
use population::Params;
use scenario::Settings;
use shop::StepUpPolicy;

/// Replay credential-stuffing campaigns through credgate and measure them.
#[derive(Parser, Debug)]
struct Args {
    /// Seeds, comma-separated: each draws another population and campaign.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    seeds: Vec<u64>,
    /// An attack shape, several comma-separated (each its own scenario), or
    /// `all` (every shape at once, one scenario). Shapes: residential,
    /// volumetric, ipv6, low-and-slow, username-first, spraying,
    /// cookie-botnet.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    shape: Vec<String>,
    /// A TOML fragment merged into the generated config (e.g. `[limits]`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Compress (> 1) or stretch (< 1) the schedule; human waits and
    /// `Retry-After` stay in real seconds.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// The campaign's length at speed 1, in seconds.
    #[arg(long, default_value_t = 45.0)]
    campaign_secs: f64,
    /// Share of a breach's pairs that open an account here.
    #[arg(long, default_value_t = 0.03)]
    hit_rate: f64,
    /// Real customers (besides the office and the leaked ones).
    #[arg(long, default_value_t = 400)]
    customers: usize,
    /// The shop asks a step-up on `Credgate-Risk: medium` too.
    #[arg(long)]
    step_up_medium: bool,
    /// Bots show browsers' fingerprints instead of their tool's.
    #[arg(long)]
    rotate_fingerprint: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench`; without it (e.g. `cargo test --benches`)
    /// nothing runs, since a run takes minutes.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.bench {
        eprintln!("campaign: run it with `cargo bench --bench campaign -- ...`; skipped");
        return Ok(());
    }
    let scenarios = scenarios(&args.shape)?;
    let settings = settings(&args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut measures = Vec::new();
    for seed in &args.seeds {
        for shapes in &scenarios {
            eprintln!(
                "campaign: seed {seed}, shape {} ...",
                report::shape_name(shapes)
            );
            let measure = runtime.block_on(scenario::run(*seed, shapes, &settings))?;
            if !args.json {
                println!("{}", report::detail(&measure));
            }
            measures.push(measure);
        }
    }
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&measures)?),
        false => println!("{}", report::summary(&measures)),
    }
    Ok(())
}

fn scenarios(names: &[String]) -> anyhow::Result<Vec<Vec<Shape>>> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "all" => Ok(Shape::ALL.to_vec()),
            other => match Shape::parse(other) {
                Some(shape) => Ok(vec![shape]),
                None => bail!("unknown shape {other:?}"),
            },
        })
        .collect()
}

fn settings(args: &Args) -> anyhow::Result<Settings> {
    if args.speed <= 0.0 {
        bail!("--speed must be positive");
    }
    let extra_config = match &args.config {
        Some(path) => {
            Some(std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?)
        }
        None => None,
    };
    Ok(Settings {
        params: Params {
            customers: args.customers,
            hit_rate: args.hit_rate,
            ..Params::default()
        },
        tactics: Tactics {
            rotate_fingerprint: args.rotate_fingerprint,
        },
        step_up: StepUpPolicy {
            on_medium: args.step_up_medium,
        },
        campaign: Duration::from_secs_f64(args.campaign_secs / args.speed),
        warm_up: Duration::from_secs_f64(10.0 / args.speed),
        extra_config,
    })
}
