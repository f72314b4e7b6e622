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

use super::{Filter, FilterError, FilterKind};
use crate::config;
use crate::credentials::Password;
use crate::logging;
use crate::username::Normalizer;

/// Why a filter was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(
        "{}: built with username normalization {filter}, but the config says {config}; \
         to use this filter, set in [leaked]: {}",
        path.display(),
        keys_for(filter)
    )]
    Normalization {
        path: PathBuf,
        filter: Normalizer,
        /// The configured rule, or what applies when the key is unset.
        config: String,
    },
    #[error(
        "{}: the filter holds no item; a reload keeps the old one \
         (set [leaked] allow_empty_reload = true to serve it)",
        path.display()
    )]
    Empty { path: PathBuf },
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
    normalization: Normalizer,
    /// Whether `[leaked] username_normalization` is set, for the message
    /// that refuses a filter built with another rule.
    configured: bool,
    /// `[leaked] allow_empty_reload`.
    allow_empty: bool,
    read: Reader,
}

/// Reads a filter file: [`Filter::load_kind`], except in tests that need to
/// pause a reload half-way.
struct Reader(Box<ReadFn>);

type ReadFn = dyn Fn(&Path, FilterKind) -> Result<Filter, FilterError> + Send + Sync;

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
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
    /// When `build-filter` wrote the file: its age survives restarts.
    pub built_at: SystemTime,
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
    /// The region of national phone numbers (`auto`, `phone`).
    pub default_region: Option<String>,
    pub built_at: u64,
    pub loaded_at: u64,
    pub sources: Vec<String>,
}

// === impl LeakedFilters ===

impl LeakedFilters {
    /// Loads every configured filter; any failure stops the start.
    pub fn load(config: &config::Leaked) -> Result<Self, LoadError> {
        Self::load_with(config, Reader(Box::new(Filter::load_kind)))
    }

    fn load_with(config: &config::Leaked, read: Reader) -> Result<Self, LoadError> {
        let normalization = config.normalizer();
        let configured = config.username_normalization.is_some();
        // libphonenumber loads its metadata on first use: now, rather than
        // on the first login typed as a phone number.
        if normalization.kind().uses_region() {
            normalization.normalize("+8613800138000");
        }
        let slot = |path: &Option<PathBuf>, kind| -> Result<Option<Slot>, LoadError> {
            let Some(path) = path else { return Ok(None) };
            let seen = FileStamp::of(path);
            let loaded = load(&read, path, kind, normalization, configured)?;
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
                configured,
                allow_empty: config.allow_empty_reload,
                read,
            }),
        })
    }

    /// The username as the pairs filter was built to see it, and as the
    /// username limit and suspicion count it (with or without a filter).
    pub fn normalize<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        self.inner.normalization.normalize(raw)
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
                    normalization: header.normalization.kind().as_str(),
                    default_region: header.normalization.region().map(|r| r.to_string()),
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
        let inner = &self.inner;
        let result = load(
            &inner.read,
            &slot.path,
            kind,
            inner.normalization,
            inner.configured,
        );
        let result = result.and_then(|loaded| match loaded.filter.header().items {
            0 if !inner.allow_empty => Err(LoadError::Empty {
                path: slot.path.clone(),
            }),
            _ => Ok(loaded),
        });
        let result = result.map(|loaded| {
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

/// Loads one filter; a pairs filter must have been built with the
/// configured username rule. A config that leaves the rule unset means
/// `email`, and does not follow the filter: the rule also keys the username
/// limits, which must not change with a file.
fn load(
    read: &Reader,
    path: &Path,
    kind: FilterKind,
    normalization: Normalizer,
    configured: bool,
) -> Result<Loaded, LoadError> {
    let filter = (read.0)(path, kind)?;
    let built_with = filter.header().normalization;
    if kind == FilterKind::Pairs && built_with != normalization {
        return Err(LoadError::Normalization {
            path: path.to_owned(),
            filter: built_with,
            config: match configured {
                true => normalization.to_string(),
                false => format!("nothing ({normalization} applies)"),
            },
        });
    }
    Ok(Loaded {
        filter,
        loaded_at: SystemTime::now(),
    })
}

/// The `[leaked]` keys that select `n`, for an error message.
fn keys_for(n: &Normalizer) -> String {
    let mut keys = format!("username_normalization = \"{}\"", n.kind());
    if let Some(region) = n.region() {
        keys += &format!(", default_region = \"{region}\"");
    }
    keys
}

// === impl Loaded ===

impl Loaded {
    fn serving(&self, kind: FilterKind) -> Serving {
        Serving {
            kind,
            items: self.filter.header().items,
            loaded_at: self.loaded_at,
            built_at: UNIX_EPOCH + Duration::from_secs(self.filter.header().built_at),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_build::FilterBuilder;

    pub(super) fn save(path: &Path, passwords: &[&str]) {
        let mut builder =
            FilterBuilder::new(FilterKind::Passwords, Normalizer::default(), 1000, 1e-5).unwrap();
        for p in passwords {
            builder.insert_password(p.as_bytes());
        }
        builder.finish(vec![]).save(path).unwrap();
    }

    #[test]
    fn a_reload_refuses_an_empty_filter_unless_told_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords.cgf");
        save(&path, &["hunter2"]);
        for allow in [false, true] {
            save(&path, &["hunter2"]);
            let config = config::Leaked {
                passwords_filter: Some(path.clone()),
                allow_empty_reload: allow,
                ..config::Leaked::default()
            };
            let filters = LeakedFilters::load(&config).unwrap();
            save(&path, &[]);
            let reloaded = filters.reload();
            let items = filters.serving()[0].items;
            match allow {
                false => {
                    let error = reloaded[0].result.as_ref().unwrap_err();
                    assert!(matches!(error, LoadError::Empty { .. }), "{error}");
                    assert_eq!(items, 1, "the old filter keeps serving");
                }
                true => {
                    assert!(reloaded[0].result.is_ok());
                    assert_eq!(items, 0);
                }
            }
        }
    }
}

#[cfg(test)]
mod reload_tests;
