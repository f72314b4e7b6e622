//! Re-reading what can change without a restart (the configuration file,
//! certificate, filters), from every trigger (SIGHUP, `POST /admin/reload`)
//! through one path, so that each reload is logged and counted the same way
//! whatever asked for it.
//!
//! A configuration file is applied whole or not at all: a file that does
//! not parse, validate or build (a block page or device key that cannot be
//! read) is refused, logged and counted, and the running one keeps serving.
//! What only a restart can change (listeners, TLS files, the state backend,
//! ...) is named in one log line and in the admin answer, and the rest is
//! applied.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{changes, Config};
use crate::leaked::store::Reloaded;
use crate::leaked::LeakedFilters;
use crate::logging::{self, LevelControl};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, Stages};
use crate::tls::CertStore;

/// A cheap handle to everything reloadable.
#[derive(Clone, Debug)]
pub struct Reloader {
    certs: Arc<CertStore>,
    filters: LeakedFilters,
    metrics: Metrics,
    /// Set once by `serve`; without it (the demo) a reload re-reads the
    /// certificate and filters only.
    config: Arc<OnceLock<ConfigFile>>,
}

/// Builds the stages of a reloaded configuration around the running ones,
/// without changing anything (`server` knows how).
pub type BuildStages = fn(&Config, &Stages) -> anyhow::Result<Stages>;

/// The configuration file a running proxy re-reads.
pub struct ConfigFile {
    path: PathBuf,
    /// The configuration the process started with: what the listeners,
    /// the state backend and the other restart-only parts were built from.
    started: Config,
    proxy: Proxy,
    build: BuildStages,
    level: LevelControl,
    /// One reload at a time: two at once could apply in either order.
    applying: Mutex<()>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ConfigFile {
    pub fn new(
        path: &Path,
        started: Config,
        proxy: Proxy,
        build: BuildStages,
        level: LevelControl,
    ) -> Self {
        Self {
            path: path.to_owned(),
            started,
            proxy,
            build,
            level,
            applying: Mutex::new(()),
        }
    }
}

/// What a reload did, part by part: `"ok"` or the reason it was refused
/// (the old version keeps serving).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The configuration file; absent when the proxy was not started from
    /// one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Status>,
    /// Keys whose new value was not applied: a restart takes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<&'static str>,
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
            .chain(&self.config)
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
            config: Arc::default(),
        }
    }

    /// Makes every reload re-read the configuration file too. Once: a
    /// second file is ignored.
    pub fn read_config_from(&self, file: ConfigFile) {
        if self.config.set(file).is_err() {
            tracing::warn!("the configuration file to reload was already set");
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
                    config: None,
                    restart_needed: Vec::new(),
                    certificate: Status::Refused {
                        error: "the reload panicked".into(),
                    },
                    filters: Default::default(),
                }
            }
        }
    }

    fn reload_blocking(&self) -> Report {
        let (config, restart_needed) = match self.config.get() {
            Some(file) => {
                let (status, restart_needed) = self.reload_config(file);
                (Some(status), restart_needed)
            }
            None => (None, Vec::new()),
        };
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
            config,
            restart_needed,
            certificate: self.reload_certificate(),
            filters,
        }
    }

    /// Re-reads the configuration file and applies it whole, or refuses it
    /// whole. Returns the status and the keys only a restart applies.
    fn reload_config(&self, file: &ConfigFile) -> (Status, Vec<&'static str>) {
        let _one = file.applying.lock().unwrap_or_else(|e| e.into_inner());
        let running = file.proxy.stages();
        let loaded = Config::load(&file.path).map_err(|e| logging::chain(&e));
        let restart_needed = loaded.as_ref().map_or_else(
            |_| Vec::new(),
            |c| changes::restart_needed(&file.started, c),
        );
        let built = loaded
            .map(|mut config| {
                // Shared state keys an IPv6 client by the prefix it started
                // with; judging by another would split its history.
                config.suspicion.ipv6_prefix = file.started.suspicion.ipv6_prefix;
                config
            })
            .and_then(|config| match (file.build)(&config, &running) {
                Ok(stages) => Ok((config, stages)),
                Err(e) => Err(format!("{}: {e:#}", file.path.display())),
            });
        self.metrics.record_config_reload(built.is_ok());
        let (config, stages) = match built {
            Ok(built) => built,
            Err(error) => {
                tracing::error!(%error, "configuration reload refused; the running one keeps serving");
                return (Status::Refused { error }, Vec::new());
            }
        };
        // The kept parts change in place, then requests switch to the new
        // stages; a request in flight finishes on the ones it started with.
        stages.state.reconfigure(&config);
        stages.attack.reconfigure(&config.attack, &stages.routes);
        stages.metrics.set_routes(&stages.routes);
        file.proxy.swap(stages);
        if let Err(error) = file.level.set(&config.log.level) {
            tracing::warn!(%error, "log level unchanged");
        }
        match restart_needed.is_empty() {
            true => tracing::info!(file = %file.path.display(), "configuration reloaded"),
            false => tracing::warn!(
                file = %file.path.display(),
                "configuration reloaded; restart needed for: {}",
                restart_needed.join(", ")
            ),
        }
        (Status::Ok("ok"), restart_needed)
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
