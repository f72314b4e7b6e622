//! Re-reading what can change without a restart, from every trigger (SIGHUP,
//! `POST /admin/reload`) through one path, so that each reload is logged and
//! counted the same way whatever asked for it.

use std::sync::Arc;

use serde::Serialize;

use crate::metrics::Metrics;
use crate::tls::CertStore;

/// A cheap handle to everything reloadable.
#[derive(Clone, Debug)]
pub struct Reloader {
    certs: Arc<CertStore>,
    metrics: Metrics,
}

/// What a reload did, part by part: `"ok"` or the reason it was refused
/// (the old version keeps serving).
#[derive(Debug, Serialize)]
pub struct Report {
    pub certificate: Outcome,
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
        matches!(self.certificate, Outcome::Ok(_))
    }
}

impl Reloader {
    pub fn new(certs: Arc<CertStore>, metrics: Metrics) -> Self {
        Self { certs, metrics }
    }

    /// Re-reads the certificate and key.
    pub fn reload(&self) -> Report {
        let result = self.certs.reload();
        self.metrics.record_tls_reload(result.is_ok());
        let certificate = match result {
            Ok(()) => {
                tracing::info!("TLS certificate reloaded");
                Outcome::Ok("ok")
            }
            Err(e) => {
                let error = format!("{:#}", anyhow::Error::new(e));
                tracing::error!(%error, "TLS certificate reload failed; keeping the old one");
                Outcome::Refused { error }
            }
        };
        Report { certificate }
    }
}
