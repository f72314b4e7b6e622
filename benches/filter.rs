//! Lookups in filters too big for the CPU caches: 10 million items at the
//! default rate of 1e-5, about 30 MB each, built in memory before measuring.
//!
//! Each measured call checks the next of 65,536 prepared queries, so that the
//! k bit probes of a lookup land on cache lines the previous lookups did not
//! warm (65,536 × 17 probes is far more than any L3 cache holds).
//!
//! ```sh
//! cargo bench --bench filter
//! ITEMS=1000000 cargo bench --bench filter   # a smaller filter, quicker setup
//! ```

use std::hint::black_box;

use credgate::filter_build::FilterBuilder;
use credgate::leaked::{Filter, FilterKind};
use credgate::username::{Normalizer, UsernameNormalization};
use criterion::{criterion_group, criterion_main, Criterion};

const QUERIES: usize = 1 << 16;

fn items() -> u64 {
    std::env::var("ITEMS").map_or(10_000_000, |n| n.parse().expect("ITEMS is a number"))
}

fn username(i: u64) -> String {
    format!("customer{i}@shop.example")
}

fn password(i: u64) -> String {
    format!("pw-{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn pairs_filter(items: u64) -> Filter {
    let mut builder =
        FilterBuilder::new(FilterKind::Pairs, UsernameNormalization::Email, items, 1e-5).unwrap();
    for i in 0..items {
        builder.insert_pair(&username(i), password(i).as_bytes());
    }
    builder.finish(vec!["generated".into()])
}

fn passwords_filter(items: u64) -> Filter {
    let mut builder = FilterBuilder::new(
        FilterKind::Passwords,
        UsernameNormalization::None,
        items,
        1e-5,
    )
    .unwrap();
    for i in 0..items {
        builder.insert_password(password(i).as_bytes());
    }
    builder.finish(vec!["generated".into()])
}

/// Spreads `QUERIES` indices over `0..items` (present) or past it (absent).
fn query_indices(items: u64, present: bool) -> impl Iterator<Item = u64> {
    let step = (items / QUERIES as u64).max(1);
    let base = if present { 0 } else { items };
    (0..QUERIES as u64).map(move |q| base + (q * step) % items.max(1))
}

fn lookups(c: &mut Criterion) {
    let items = items();
    let pairs = pairs_filter(items);
    let passwords = passwords_filter(items);
    let mut group = c.benchmark_group("lookup");
    for present in [true, false] {
        let label = if present { "present" } else { "absent" };
        let queries: Vec<(String, String)> = query_indices(items, present)
            .map(|i| (username(i), password(i)))
            .collect();
        let mut next = queries.iter().cycle();
        group.bench_function(format!("pairs/{label}"), |b| {
            b.iter(|| {
                let (u, p) = next.next().unwrap();
                black_box(pairs.contains_pair(black_box(u), black_box(p.as_bytes())))
            })
        });
        group.bench_function(format!("pairs+normalize/{label}"), |b| {
            b.iter(|| {
                let (u, p) = next.next().unwrap();
                let u = Normalizer::from(UsernameNormalization::Email).normalize(black_box(u));
                black_box(pairs.contains_pair(&u, black_box(p.as_bytes())))
            })
        });
        group.bench_function(format!("passwords/{label}"), |b| {
            b.iter(|| {
                let (_, p) = next.next().unwrap();
                black_box(passwords.contains_password(black_box(p.as_bytes())))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
