//! `tracing` output as the `[log]` section asks: JSON lines or text, on
//! stderr, filtered by `level` (or `RUST_LOG` when set, for debugging).

use tracing_subscriber::EnvFilter;

use crate::config::{self, LogFormat};

/// Installs the subscriber for the process. Call once, from `main`.
pub fn init(log: &config::Log) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level.0));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
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
