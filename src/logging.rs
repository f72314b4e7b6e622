//! `tracing` output as the `[log]` section asks: JSON lines or text, on
//! stderr, filtered by `level` (or `RUST_LOG` when set, for debugging). The
//! access log ([`access`]) is on its own target; in the `combined` format it
//! has a layer of its own that writes the line and nothing else.

pub mod access;

use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{self, AccessFormat, LogFormat};

/// Installs the subscriber for the process. Call once, from `main`.
pub fn init(log: &config::Log) {
    let level =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level.0));
    let combined = log.access_format == AccessFormat::Combined;
    // In the combined format, the access lines are the access layer's alone.
    let not_access = filter_fn(move |m| !(combined && m.target() == access::TARGET));
    let main = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let main = match log.format {
        LogFormat::Json => main.json().flatten_event(true).boxed(),
        LogFormat::Text => main.boxed(),
    };
    let access = combined.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_filter(level().and(filter_fn(|m| m.target() == access::TARGET)))
    });
    let result = tracing_subscriber::registry()
        .with(main.with_filter(level().and(not_access)))
        .with(access)
        .try_init();
    if let Err(e) = result {
        eprintln!("warning: logging was already set up: {e}");
    }
}

/// An error and its causes on one line, `a: b: c`, for a log field.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
