//! Re-reading what can change without a restart (certificate, filters), from
//! every trigger (SIGHUP, `POST /admin/reload`) through one path, so that each reload is logged and
//! counted the same way whatever asked for it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::leaked::store::Reloaded;
use crate::leaked::LeakedFilters;
use crate::logging;
use crate::metrics::Metrics;
use crate::tls::CertStore;

/// A cheap handle to everything reloadable.
#[derive(Clone, Debug)]
pub struct Reloader {
    certs: Arc<CertStore>,
    filters: LeakedFilters,
    metrics: Metrics,
}

/// What a reload did, part by part: `"ok"` or the reason it was refused
/// (the old version keeps serving).
#[derive(Debug, Serialize)]
pub struct Report {
    pub certificate: Status,
    /// By filter kind: `pairs`, `passwords`.
    pub filters: std::collections::BTreeMap<&'static str, Status>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Status {
    Ok(&'static str),
    Refused { error: String },
}

impl Report {
    /// Returns true if and only if every part reloaded.
    pub fn all_ok(&self) -> bool {
        std::iter::once(&self.certificate)
            .chain(self.filters.values())
            .all(|o| matches!(o, Status::Ok(_)))
    }
}

impl Reloader {
    pub fn new(certs: Arc<CertStore>, filters: LeakedFilters, metrics: Metrics) -> Self {
        Self {
            certs,
            filters,
            metrics,
        }
    }

    pub fn filters(&self) -> &LeakedFilters {
        &self.filters
    }

    /// Re-reads the certificate, its key and every filter, off the async
    /// workers (a large filter takes a while to read).
    pub async fn reload(&self) -> Report {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.reload_blocking()).await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "reload panicked");
                Report {
                    certificate: Status::Refused {
                        error: "the reload panicked".into(),
                    },
                    filters: Default::default(),
                }
            }
        }
    }

    fn reload_blocking(&self) -> Report {
        let filters = self
            .filters
            .reload()
            .into_iter()
            .map(|reloaded| {
                self.record(&reloaded);
                let status = match reloaded.result {
                    Ok(_) => Status::Ok("ok"),
                    Err(e) => Status::Refused {
                        error: logging::chain(&e),
                    },
                };
                (reloaded.kind.as_str(), status)
            })
            .collect();
        Report {
            certificate: self.reload_certificate(),
            filters,
        }
    }

    /// Polls the filter files every `interval` until `shutdown`, reloading
    /// those that changed.
    pub async fn watch_filters(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let filters = self.filters.clone();
            match tokio::task::spawn_blocking(move || filters.reload_changed()).await {
                Ok(reloads) => reloads.iter().for_each(|r| self.record(r)),
                Err(_) => tracing::error!("the filter watcher's reload panicked"),
            }
        }
    }

    fn record(&self, reloaded: &Reloaded) {
        self.metrics
            .record_filter_reload(reloaded.kind, reloaded.result.is_ok());
        if let Ok(serving) = &reloaded.result {
            self.metrics.record_filter_loaded(serving);
        }
    }

    fn reload_certificate(&self) -> Status {
        let result = self.certs.reload();
        self.metrics.record_tls_reload(result.is_ok());
        self.metrics.record_tls_certificate(self.certs.not_after());
        match result {
            Ok(()) => {
                tracing::info!("TLS certificate reloaded");
                Status::Ok("ok")
            }
            Err(e) => {
                let error = logging::chain(&e);
                tracing::error!(%error, "TLS certificate reload failed; keeping the old one");
                Status::Refused { error }
            }
        }
    }
}
