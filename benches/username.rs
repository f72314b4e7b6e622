//! The cost of normalising a username on the request path, per rule and per
//! kind of username: `email` against `auto` on a plain address (the fast
//! path, which must stay allocation-free), and `auto` on the spellings that
//! reach libphonenumber (phone numbers) or just miss it (QQ numbers).
//!
//! ```sh
//! cargo bench --bench username
//! ```

use std::hint::black_box;

use credgate::username::{Normalizer, UsernameNormalization};
use criterion::{criterion_group, criterion_main, Criterion};

fn normalize(c: &mut Criterion) {
    let region = Some("CN".parse().unwrap());
    let email = Normalizer::new(UsernameNormalization::Email, None);
    let auto = Normalizer::new(UsernameNormalization::Auto, region);
    let cases = [
        ("email/plain", email, "customer123@shop.example"),
        ("email/mixed-case", email, "Customer123@Shop.Example"),
        ("auto/plain", auto, "customer123@shop.example"),
        ("auto/mixed-case", auto, "Customer123@Shop.Example"),
        ("auto/qq-id", auto, "123456789"),
        ("auto/cn-mobile", auto, "13800138000"),
        ("auto/cn-mobile-spaced", auto, "+86 138 0013 8000"),
        ("auto/cn-mobile-fullwidth", auto, "１３８００１３８０００"),
        ("auto/us-international", auto, "+1 (415) 555-2671"),
    ];
    let mut group = c.benchmark_group("normalize");
    for (label, normalizer, raw) in cases {
        let raw = raw.to_owned();
        // The first phone number loads libphonenumber's metadata; not
        // measured.
        black_box(normalizer.normalize(&raw));
        group.bench_function(label, |b| {
            b.iter(|| black_box(normalizer.normalize(black_box(&raw)).len()))
        });
    }
    group.finish();
}

criterion_group!(benches, normalize);
criterion_main!(benches);
