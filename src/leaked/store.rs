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
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::{Filter, FilterError, FilterKind};
use crate::config;
use crate::credentials::Password;
use crate::logging;
use crate::username::{normalize_username, UsernameNormalization};

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
}

/// One filter file and the filter loaded from it.
#[derive(Debug)]
struct Slot {
    kind: FilterKind,
    path: PathBuf,
    current: ArcSwap<Loaded>,
    /// The file as it was just before it was last read, successfully or not:
    /// the watcher reloads when it changes. Held for the whole of a reload,
    /// so that reloads of one filter run one at a time and the last one to
    /// finish is the newest file read.
    seen: Mutex<Option<FileStamp>>,
}

/// What the leaked checks found for one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    pub pair: bool,
    pub password: bool,
}

/// A filter now serving, for the gauges.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub kind: FilterKind,
    pub items: u64,
    pub loaded_at: SystemTime,
}

/// What one filter's reload did.
#[derive(Debug)]
pub struct Reloaded {
    pub kind: FilterKind,
    pub result: Result<Serving, LoadError>,
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
    pub fn load(config: &config::Leaked) -> Result<Self, LoadError> {
        let normalization = config.username_normalization;
        let slot = |path: &Option<PathBuf>, kind| -> Result<Option<Slot>, LoadError> {
            let Some(path) = path else { return Ok(None) };
            let seen = FileStamp::of(path);
            let loaded = load(path, kind, normalization)?;
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
            }),
        })
    }

    /// The username as the pairs filter was built to see it.
    pub fn normalize<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        normalize_username(raw, self.inner.normalization)
    }

    /// What the filters say about one attempt, given the username from
    /// [`Self::normalize`]. Lock-free and allocation-free.
    pub fn check(&self, normalized_username: &str, password: &Password) -> Found {
        let password = password.as_bytes();
        let pair = self.inner.pairs.as_ref().is_some_and(|slot| {
            let filter = &slot.current.load().filter;
            filter.contains_pair(normalized_username, password)
        });
        let password = self
            .inner
            .passwords
            .as_ref()
            .is_some_and(|slot| slot.current.load().filter.contains_password(password));
        Found { pair, password }
    }

    /// The filters serving now.
    pub fn serving(&self) -> Vec<Serving> {
        self.slots()
            .map(|slot| slot.current.load().serving(slot.kind))
            .collect()
    }

    /// Re-reads every filter file. Blocking: call it off the async workers.
    pub fn reload(&self) -> Vec<Reloaded> {
        self.slots()
            .filter_map(|slot| self.reload_slot(slot, false))
            .collect()
    }

    /// Re-reads the filter files that changed on disk since they were last
    /// read. Blocking: call it off the async workers.
    pub fn reload_changed(&self) -> Vec<Reloaded> {
        self.slots()
            .filter_map(|slot| self.reload_slot(slot, true))
            .collect()
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

    /// Reloads one filter; with `only_changed`, only if its file changed
    /// since it was last read (`None`: it did not).
    fn reload_slot(&self, slot: &Slot, only_changed: bool) -> Option<Reloaded> {
        let kind = slot.kind;
        let mut seen = slot.seen.lock().unwrap_or_else(|e| e.into_inner());
        // The stamp is taken before the read: a file replaced during the read
        // then differs from it, and the next watch reads it again.
        let now = FileStamp::of(&slot.path);
        if only_changed && (now.is_none() || *seen == now) {
            return None;
        }
        if only_changed {
            tracing::info!(filter = kind.as_str(), "filter file changed on disk");
        }
        *seen = now;
        let result = load(&slot.path, kind, self.inner.normalization).map(|loaded| {
            let serving = loaded.serving(kind);
            slot.current.store(Arc::new(loaded));
            serving
        });
        match &result {
            Ok(serving) => {
                tracing::info!(
                    filter = kind.as_str(),
                    items = serving.items,
                    "filter reloaded"
                )
            }
            Err(e) => {
                let error = logging::chain(e);
                tracing::error!(filter = kind.as_str(), %error, "filter reload refused; keeping the old one");
            }
        }
        Some(Reloaded { kind, result })
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

// === impl Loaded ===

impl Loaded {
    fn serving(&self, kind: FilterKind) -> Serving {
        Serving {
            kind,
            items: self.filter.header().items,
            loaded_at: self.loaded_at,
        }
    }
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

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
