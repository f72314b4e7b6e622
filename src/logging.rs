//! `tracing` output as the `[log]` section asks: JSON lines or text, on
//! stderr, filtered by `level` (or `RUST_LOG` when set, for debugging). The
//! access log ([`access`]) is on its own target; in the `combined` format it
//! has a layer of its own that writes the line and nothing else.

pub mod access;

use std::sync::{Arc, Mutex};

use tracing::subscriber::Interest;
use tracing::Metadata;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{self, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer};

use crate::config::{self, AccessFormat, LogFormat};

/// Changes the level of the running subscriber: a reloaded `[log] level`.
/// With `RUST_LOG` set, the environment keeps the say.
#[derive(Clone)]
pub struct LevelControl {
    set: Arc<SetLevel>,
}

type SetLevel = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for LevelControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelControl").finish_non_exhaustive()
    }
}

impl LevelControl {
    /// Filters from now on at `level` (a `tracing` directive such as
    /// `info` or `credgate=debug`).
    pub fn set(&self, level: &config::LogLevel) -> Result<(), String> {
        (self.set)(&level.0)
    }
}

/// Installs the subscriber for the process. Call once, from `main`.
pub fn init(log: &config::Log) -> LevelControl {
    let (subscriber, control) = subscriber(log);
    if let Err(e) = subscriber.try_init() {
        eprintln!("warning: logging was already set up: {e}");
    }
    control
}

/// The subscriber `init` installs, and the handle that changes its level.
fn subscriber(log: &config::Log) -> (impl tracing::Subscriber + Send + Sync, LevelControl) {
    let from_env = std::env::var_os(EnvFilter::DEFAULT_ENV).is_some();
    let level = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level.0));
    let hint = LevelHint::of(&level);
    // The level is one global filter, not one per layer: `enabled!` (the
    // access log asks it per request) consults per-layer filters through
    // thread-local state that a reload did not always reach, so a reloaded
    // level sometimes left the access log off.
    let (level, handle) = reload::Layer::new(level);
    let combined = log.access_format == AccessFormat::Combined;
    // In the combined format, the access lines are the access layer's alone.
    let not_access = ByTarget {
        keep: match combined {
            true => |m| m.target() != access::TARGET,
            false => |_| true,
        },
        hint: hint.clone(),
    };
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
            .with_filter(ByTarget {
                keep: |m| m.target() == access::TARGET,
                hint: hint.clone(),
            })
    });
    let subscriber = tracing_subscriber::registry()
        .with(level)
        .with(main.with_filter(not_access))
        .with(access);
    let set = move |level: &str| {
        if from_env {
            return Ok(());
        }
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        // Before the reload, which asks every filter for its hint again.
        hint.set(&filter);
        handle.reload(filter).map_err(|e| e.to_string())
    };
    (subscriber, LevelControl { set: Arc::new(set) })
}

/// A per-layer filter by target. Its level hint is the level filter's:
/// tracing takes the most verbose hint of any layer as the level below
/// which a `trace!` or `debug!` costs nothing, and a filter by target that
/// said "any level" (or nothing) made that TRACE. Every disabled event and
/// span of h2 and hyper then asked the subscriber, about 130 times per
/// HTTP/2 request (a sixth of its instructions, benches/load), and
/// `enabled!` answered yes.
struct ByTarget {
    keep: fn(&Metadata<'_>) -> bool,
    hint: LevelHint,
}

impl<S> layer::Filter<S> for ByTarget {
    fn enabled(&self, meta: &Metadata<'_>, _: &layer::Context<'_, S>) -> bool {
        (self.keep)(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        match (self.keep)(meta) {
            true => Interest::always(),
            false => Interest::never(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.hint.get()
    }
}

/// The level filter's current hint, shared with the [`ByTarget`] filters.
/// A std `Mutex` is fine: tracing reads it only when it rebuilds its
/// caches (at start and on a reload), never per event.
#[derive(Clone)]
struct LevelHint(Arc<Mutex<Option<LevelFilter>>>);

impl LevelHint {
    fn of(filter: &EnvFilter) -> Self {
        Self(Arc::new(Mutex::new(layer::Layer::<
            tracing_subscriber::Registry,
        >::max_level_hint(filter))))
    }

    fn set(&self, filter: &EnvFilter) {
        let hint = layer::Layer::<tracing_subscriber::Registry>::max_level_hint(filter);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = hint;
    }

    fn get(&self) -> Option<LevelFilter> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the access log counts as enabled under `log`'s subscriber.
    fn access_enabled(log: &config::Log) -> bool {
        let access = access::AccessLog::new(log);
        tracing::subscriber::with_default(subscriber(log).0, || access.enabled())
    }

    #[test]
    fn access_lines_are_skipped_below_info() {
        for format in [AccessFormat::Json, AccessFormat::Combined] {
            let mut log = config::Log {
                access_format: format,
                ..config::Log::default()
            };
            assert!(access_enabled(&log), "{format:?} at info");
            log.level = config::LogLevel("warn".into());
            assert!(!access_enabled(&log), "{format:?} at warn");
            log.level = config::LogLevel("warn,credgate::access=info".into());
            assert!(access_enabled(&log), "{format:?}, access alone at info");
        }
    }
}
