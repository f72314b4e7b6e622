//! Measures a pairs filter's real false-positive rate: loads FILE, checks
//! PROBES pairs that `benches/build_filter.sh` never generated, and prints
//! the rate next to the header's target and estimate, with the load time and
//! the process's peak memory.
//!
//! ```sh
//! cargo run --release --example fp_rate -- pairs.cgf 1000000
//! ```

use std::path::PathBuf;
use std::time::Instant;

use credgate::leaked::{Filter, FilterKind};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), probes) = (args.next(), args.next()) else {
        anyhow::bail!("usage: fp_rate FILE [PROBES]");
    };
    let probes: u64 = probes.map_or(Ok(1_000_000), |p| p.parse())?;
    let started = Instant::now();
    let filter = Filter::load_kind(&PathBuf::from(path), FilterKind::Pairs)?;
    let loaded = started.elapsed();
    let header = filter.header();
    let started = Instant::now();
    let hits = (0..probes)
        .filter(|i| {
            let raw = format!("absent{i}@example.org");
            let username = header.normalization.normalize(&raw);
            filter.contains_pair(&username, format!("never-{i}").as_bytes())
        })
        .count();
    let checked = started.elapsed();
    let measured = hits as f64 / probes as f64;
    println!(
        "loaded:     {} in {:.2} s, peak RSS {}",
        header.file_len(),
        loaded.as_secs_f64(),
        peak_rss()
    );
    println!(
        "probes:     {probes} absent pairs in {:.2} s ({:.0} ns each)",
        checked.as_secs_f64(),
        checked.as_nanos() as f64 / probes as f64
    );
    println!("hits:       {hits}");
    println!(
        "fp rate:    measured {measured:.3e}, target {:.3e}, estimated {:.3e} ({:.2}x target)",
        header.fp_rate,
        header.estimated_fp_rate(),
        measured / header.fp_rate
    );
    Ok(())
}

/// The process's peak resident memory (`VmHWM`), as Linux reports it.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
