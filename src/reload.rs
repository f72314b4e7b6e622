//! Re-reading what can change without a restart (certificate, filters), from
//! every trigger (SIGHUP, `POST /admin/reload`) through one path, so that each reload is logged and
//! counted the same way whatever asked for it.

use std::sync::Arc;

use serde::Serialize;

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
    pub certificate: Outcome,
    /// By filter kind: `pairs`, `passwords`.
    pub filters: std::collections::BTreeMap<&'static str, Outcome>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Ok(&'static str),
    Refused { error: String },
}

impl Report {
    /// Returns true if and only if every part reloaded.
    pub fn all_ok(&self) -> bool {
        std::iter::once(&self.certificate)
            .chain(self.filters.values())
            .all(|o| matches!(o, Outcome::Ok(_)))
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
                    certificate: Outcome::Refused {
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
            .map(|(kind, result)| {
                let outcome = match result {
                    Ok(()) => Outcome::Ok("ok"),
                    Err(e) => Outcome::Refused {
                        error: logging::chain(&e),
                    },
                };
                (kind.as_str(), outcome)
            })
            .collect();
        Report {
            certificate: self.reload_certificate(),
            filters,
        }
    }

    fn reload_certificate(&self) -> Outcome {
        let result = self.certs.reload();
        self.metrics.record_tls_reload(result.is_ok());
        match result {
            Ok(()) => {
                tracing::info!("TLS certificate reloaded");
                Outcome::Ok("ok")
            }
            Err(e) => {
                let error = logging::chain(&e);
                tracing::error!(%error, "TLS certificate reload failed; keeping the old one");
                Outcome::Refused { error }
            }
        }
    }
}
