//! Whether the shared backend is failing: counted on every failure, logged
//! now and then, and ended by the next answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntCounter;

use super::redis::BackendError;
use crate::config::OnBackendError;
use crate::logging;

/// Failures are logged at most this often; every one is counted.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Health {
    degraded: AtomicBool,
    /// When a failure was last logged.
    last_warning: Mutex<Option<Instant>>,
    errors: IntCounter,
}

impl Health {
    pub fn new(errors: IntCounter) -> Self {
        Self {
            degraded: AtomicBool::new(false),
            last_warning: Mutex::new(None),
            errors,
        }
    }

    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Counts a failure of the shared backend; logs one now and then.
    pub fn failed(&self, error: &BackendError, policy: OnBackendError) {
        self.errors.inc();
        self.degraded.store(true, Ordering::Relaxed);
        // A poisoned lock only means another thread panicked mid-log: the
        // timestamp is still usable.
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.map_or(true, |at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                error = %logging::chain(error),
                on_backend_error = policy.as_str(),
                "state backend failing"
            );
        }
    }

    pub fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("state backend answering again");
        }
    }
}
