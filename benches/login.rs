//! Login body extraction: a typical form body and a typical nested JSON body,
//! from received bytes to checked credentials (the work done per attempt
//! before the filter lookup).
//!
//! ```sh
//! cargo bench --bench login
//! ```

use std::hint::black_box;

use bytes::Bytes;
use credgate::config::BodyFormat;
use credgate::config::Config;
use credgate::credentials::{self, LoginBody};
use credgate::route::{LoginRoute, Routes};
use criterion::{criterion_group, criterion_main, Criterion};

fn route(format: &str, username: &str, password: &str) -> LoginRoute {
    let toml = format!(
        r#"
        [server]
        tls_cert = "unused"
        tls_key = "unused"
        [upstream]
        url = "http://127.0.0.1:1"
        [[login]]
        path = "/login"
        format = "{format}"
        username_field = "{username}"
        password_field = "{password}"
        "#
    );
    let config = Config::from_toml(&toml).expect("a valid bench config");
    Routes::new(&config.login).unwrap().logins()[0].clone()
}

fn bench(c: &mut Criterion) {
    let form_route = route("form", "username", "password");
    let form = LoginBody {
        bytes: Bytes::from_static(
            b"csrf_token=8f14e45fceea167a5a36dedd4bea2543&username=jane.doe%40example.com\
              &password=Tr0ub4dor%263-x%21&remember_me=on",
        ),
        format: BodyFormat::Form,
    };
    c.bench_function("extract/form", |b| {
        b.iter(|| credentials::extract(black_box(&form), &form_route))
    });

    let json_route = route("json", "/user/email", "/user/password");
    let json = LoginBody {
        bytes: Bytes::from_static(
            br#"{"user":{"email":"jane.doe@example.com","password":"Tr0ub4dor&3-x!"},
                "remember":true,"device":{"id":"a1b2c3","name":"Jane's phone"}}"#,
        ),
        format: BodyFormat::Json,
    };
    c.bench_function("extract/json", |b| {
        b.iter(|| credentials::extract(black_box(&json), &json_route))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
