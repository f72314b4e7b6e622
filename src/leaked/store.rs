//! The filters a running proxy checks against, swapped atomically.
//!
//! Each configured filter sits behind an [`ArcSwap`]: a check takes the
//! current filter without a lock, and a reload loads the new file completely,
//! verifies it, and only then swaps it in. A check in flight keeps the filter
//! it started with, so no request is dropped or sees half a filter; a file
//! that fails to load is refused, logged and counted, and the old filter
//! keeps serving. During a reload both filters are in memory for a moment.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{normalize_username, Filter, FilterError, FilterKind, UsernameNormalization};
use crate::config;
use crate::credentials::Password;
use crate::logging;
use crate::metrics::Metrics;
use crate::verdict::Signals;

/// Why a filter was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(
        "{}: built with username normalization {filter}, but the config says {config}",
        path.display()
    )]
    Normalization {
        path: PathBuf,
        filter: UsernameNormalization,
        config: UsernameNormalization,
    },
}

/// The configured filters. Cloning is shallow.
#[derive(Clone, Debug)]
pub struct LeakedFilters {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pairs: Option<Slot>,
    passwords: Option<Slot>,
    normalization: UsernameNormalization,
    metrics: Metrics,
}

/// One filter file and the filter loaded from it.
#[derive(Debug)]
struct Slot {
    kind: FilterKind,
    path: PathBuf,
    current: ArcSwap<Loaded>,
    /// The file as it was when last read, successfully or not: the watcher
    /// reloads when it changes.
    seen: Mutex<Option<FileStamp>>,
}

#[derive(Debug)]
struct Loaded {
    filter: Filter,
    loaded_at: SystemTime,
}

/// Enough of a file's metadata to notice that it was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// A filter as `GET /admin/filters` shows it.
#[derive(Debug, Serialize)]
pub struct FilterStatus {
    pub filter: &'static str,
    pub path: PathBuf,
    pub items: u64,
    pub target_fp_rate: f64,
    pub estimated_fp_rate: f64,
    pub normalization: &'static str,
    pub built_at: u64,
    pub loaded_at: u64,
    pub sources: Vec<String>,
}

// === impl LeakedFilters ===

impl LeakedFilters {
    /// Loads every configured filter; any failure stops the start.
    pub fn load(config: &config::Leaked, metrics: Metrics) -> Result<Self, LoadError> {
        let normalization = config.username_normalization;
        let slot = |path: &Option<PathBuf>, kind| -> Result<Option<Slot>, LoadError> {
            let Some(path) = path else { return Ok(None) };
            let seen = FileStamp::of(path);
            let loaded = load(path, kind, normalization)?;
            metrics.record_filter_loaded(kind, loaded.filter.header().items, loaded.loaded_at);
            Ok(Some(Slot {
                kind,
                path: path.clone(),
                current: ArcSwap::from_pointee(loaded),
                seen: Mutex::new(seen),
            }))
        };
        let pairs = slot(&config.pairs_filter, FilterKind::Pairs)?;
        let passwords = slot(&config.passwords_filter, FilterKind::Passwords)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pairs,
                passwords,
                normalization,
                metrics,
            }),
        })
    }

    /// The username as the pairs filter was built to see it.
    pub fn normalize<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        normalize_username(raw, self.inner.normalization)
    }

    /// What the filters say about one attempt, given the username from
    /// [`Self::normalize`]. Lock-free and allocation-free.
    pub fn check(&self, normalized_username: &str, password: &Password) -> Signals {
        let password = password.as_bytes();
        let pair_leaked = self.inner.pairs.as_ref().is_some_and(|slot| {
            let filter = &slot.current.load().filter;
            filter.contains_pair(normalized_username, password)
        });
        let password_leaked = self
            .inner
            .passwords
            .as_ref()
            .is_some_and(|slot| slot.current.load().filter.contains_password(password));
        Signals {
            pair_leaked,
            password_leaked,
        }
    }

    /// Re-reads every filter file. Blocking: call it off the async workers.
    pub fn reload(&self) -> Vec<(FilterKind, Result<(), LoadError>)> {
        self.slots()
            .map(|slot| (slot.kind, self.reload_slot(slot)))
            .collect()
    }

    /// Re-reads the filter files that changed on disk since they were last
    /// read. Blocking: call it off the async workers.
    pub fn reload_changed(&self) {
        for slot in self.slots() {
            let now = FileStamp::of(&slot.path);
            let changed = {
                let mut seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
                let changed = now.is_some() && *seen != now;
                *seen = now;
                changed
            };
            if changed {
                tracing::info!(filter = slot.kind.as_str(), "filter file changed on disk");
                let _ = self.reload_slot(slot);
            }
        }
    }

    /// Polls the filter files every `interval` until `shutdown`, reloading
    /// those that changed.
    pub async fn watch(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let this = self.clone();
            if tokio::task::spawn_blocking(move || this.reload_changed())
                .await
                .is_err()
            {
                tracing::error!("the filter watcher's reload panicked");
            }
        }
    }

    pub fn status(&self) -> Vec<FilterStatus> {
        self.slots()
            .map(|slot| {
                let loaded = slot.current.load();
                let header = loaded.filter.header();
                FilterStatus {
                    filter: slot.kind.as_str(),
                    path: slot.path.clone(),
                    items: header.items,
                    target_fp_rate: header.fp_rate,
                    estimated_fp_rate: header.estimated_fp_rate(),
                    normalization: header.normalization.as_str(),
                    built_at: header.built_at,
                    loaded_at: unix_seconds(loaded.loaded_at),
                    sources: header.sources.clone(),
                }
            })
            .collect()
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.inner.pairs.iter().chain(self.inner.passwords.iter())
    }

    fn reload_slot(&self, slot: &Slot) -> Result<(), LoadError> {
        let kind = slot.kind.as_str();
        let result = load(&slot.path, slot.kind, self.inner.normalization);
        self.inner
            .metrics
            .record_filter_reload(slot.kind, result.is_ok());
        match result {
            Ok(loaded) => {
                let items = loaded.filter.header().items;
                let loaded_at = loaded.loaded_at;
                slot.current.store(Arc::new(loaded));
                self.inner
                    .metrics
                    .record_filter_loaded(slot.kind, items, loaded_at);
                tracing::info!(filter = kind, items, "filter reloaded");
                Ok(())
            }
            Err(e) => {
                let error = logging::chain(&e);
                tracing::error!(filter = kind, %error, "filter reload refused; keeping the old one");
                Err(e)
            }
        }
    }
}

fn load(
    path: &Path,
    kind: FilterKind,
    normalization: UsernameNormalization,
) -> Result<Loaded, LoadError> {
    let filter = Filter::load_kind(path, kind)?;
    let built_with = filter.header().normalization;
    if kind == FilterKind::Pairs && built_with != normalization {
        return Err(LoadError::Normalization {
            path: path.to_owned(),
            filter: built_with,
            config: normalization,
        });
    }
    Ok(Loaded {
        filter,
        loaded_at: SystemTime::now(),
    })
}

// === impl FileStamp ===

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
