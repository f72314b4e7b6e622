//! The local backend's bans on disk (`state.ban_snapshot`), so that a
//! restart does not pardon every banned client.
//!
//! The file is JSON, written whole to a temporary file beside it and renamed
//! over it, so that a crash mid-write leaves the previous snapshot. Ends are
//! wall-clock Unix milliseconds: a ban that ended while credgate was down is
//! dropped when the snapshot is read.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::logging;
use crate::reputation::{Ban, BanReason};

use super::local::Local;
use super::origin::{Cause, Held, Note, Origin};

/// The snapshot format this build writes and reads.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: cannot read the ban snapshot", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the ban snapshot is corrupt", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: ban snapshot version {found}; this build reads {VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: cannot write the ban snapshot", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// The file is there but unusable (rather than unreadable).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::Version { .. })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct File {
    version: u32,
    bans: Vec<Entry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    target: IpNet,
    origin: Origin,
    /// The rule of an automatic ban, the operator's words of a manual one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    /// Unix milliseconds.
    until_ms: u64,
}

/// Reads the bans of the snapshot at `path` into `local`, once, at start,
/// and writes them back at once (without those that ended), so that a path
/// that cannot be written fails the start rather than every later save.
/// A corrupt snapshot is set aside (`.corrupt`) with a warning and the
/// proxy starts without those bans: refusing to start would take the shop
/// down over a mitigation. One that cannot be read at all is an error, as
/// it could not be written either.
pub fn restore(path: &Path, local: &Local) -> Result<(), SnapshotError> {
    match load(path) {
        Ok(bans) => {
            tracing::info!(bans = bans.len(), "state: bans restored from the snapshot");
            local.restore(bans);
        }
        Err(error) if error.is_corrupt() => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".corrupt");
            let kept = std::fs::rename(path, &aside).is_ok();
            tracing::warn!(
                error = %logging::chain(&error),
                kept_as = %PathBuf::from(aside).display(),
                kept,
                "state: starting without the snapshot's bans"
            );
        }
        Err(error) => return Err(error),
    }
    save(path, &local.bans())
}

/// Writes `bans` to `path` off the async workers; returns true if and only
/// if they were written. A failure is logged at `warn` when it follows a
/// success (`failing`: the previous write failed too), so that a retry
/// every few seconds does not flood the log.
pub async fn save_in_background(path: PathBuf, bans: Vec<Held>, failing: bool) -> bool {
    let error = match tokio::task::spawn_blocking(move || save(&path, &bans)).await {
        Ok(Ok(())) => {
            if failing {
                tracing::info!("state: bans saved again");
            }
            return true;
        }
        Ok(Err(error)) => logging::chain(&error),
        Err(error) => error.to_string(),
    };
    match failing {
        true => tracing::debug!(%error, "state: bans not saved"),
        false => tracing::warn!(%error, "state: bans not saved; retrying every few seconds"),
    }
    false
}

/// The bans in the snapshot at `path` still in force; none if there is no
/// file yet.
pub fn load(path: &Path) -> Result<Vec<Held>, SnapshotError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let file: File = serde_json::from_slice(&text).map_err(|source| SnapshotError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    if file.version != VERSION {
        return Err(SnapshotError::Version {
            path: path.to_owned(),
            found: file.version,
        });
    }
    Ok(from_file(file, wall_ms(), Instant::now()))
}

/// Writes `bans` to `path`, atomically.
pub fn save(path: &Path, bans: &[Held]) -> Result<(), SnapshotError> {
    let file = to_file(bans, wall_ms(), Instant::now());
    let write_error = |source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec(&file).map_err(|e| write_error(e.into()))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Addresses are personal data: readable by credgate alone.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        out.write_all(&text)?;
        out.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    written.map_err(write_error)
}

fn to_file(bans: &[Held], now_ms: u64, now: Instant) -> File {
    let bans = bans
        .iter()
        .filter(|(_, ban, _)| ban.until > now)
        .map(|(target, ban, note)| {
            let cause = Cause::of(ban.reason, note.as_ref());
            let left = ban.until.saturating_duration_since(now);
            Entry {
                target: *target,
                origin: cause.origin,
                reason: match cause.origin {
                    Origin::Automatic => Some(cause.reason.into_owned()),
                    Origin::Manual => note.as_ref().and_then(|n| n.reason.clone()),
                },
                by: cause.by,
                until_ms: now_ms.saturating_add(u64::try_from(left.as_millis()).unwrap_or(0)),
            }
        })
        .collect();
    File {
        version: VERSION,
        bans,
    }
}

fn from_file(file: File, now_ms: u64, now: Instant) -> Vec<Held> {
    file.bans
        .into_iter()
        .filter(|entry| entry.until_ms > now_ms)
        .filter_map(|entry| {
            let until = now.checked_add(Duration::from_millis(entry.until_ms - now_ms))?;
            let rule = entry.reason.as_deref().and_then(BanReason::from_name);
            let (reason, note) = match (entry.origin, rule) {
                (Origin::Automatic, Some(rule)) if rule != BanReason::Manual => (rule, None),
                // A rule this build does not know keeps its name, as an
                // operator's words, rather than the ban being lost.
                _ => (
                    BanReason::Manual,
                    Some(Note {
                        by: entry.by,
                        reason: entry.reason,
                    })
                    .filter(|n| !n.is_empty()),
                ),
            };
            Some((entry.target.trunc(), Ban { until, reason }, note))
        })
        .collect()
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(target: &str, secs: u64, reason: BanReason, note: Option<Note>, now: Instant) -> Held {
        let ban = Ban {
            until: now + Duration::from_secs(secs),
            reason,
        };
        (target.parse().unwrap(), ban, note)
    }

    #[test]
    fn bans_round_trip_and_ended_ones_are_dropped() {
        let now = Instant::now();
        let note = Note {
            by: Some("alice".into()),
            reason: Some("card testing".into()),
        };
        let bans = vec![
            held("203.0.113.7/32", 600, BanReason::Failures, None, now),
            held("198.51.100.0/24", 3600, BanReason::Manual, Some(note), now),
            held("192.0.2.1/32", 60, BanReason::Manual, None, now),
        ];
        let file = to_file(&bans, 1_000_000, now);
        let text = serde_json::to_string(&file).unwrap();
        let back: File = serde_json::from_str(&text).unwrap();
        // Read back two minutes later, by a process started at `later`.
        let later = now + Duration::from_secs(5);
        let restored = from_file(back, 1_000_000 + 120_000, later);
        assert_eq!(restored.len(), 2, "the 60 s ban ended: {restored:?}");
        assert_eq!(restored[0].0, bans[0].0);
        assert_eq!(restored[0].1.reason, BanReason::Failures);
        assert_eq!(restored[0].1.until, later + Duration::from_secs(480));
        assert_eq!(restored[1].1.reason, BanReason::Manual);
        assert_eq!(restored[1].2, bans[1].2);
    }

    #[test]
    fn an_unknown_rule_is_kept_as_a_manual_ban_with_its_name() {
        let text = r#"{"version":1,"bans":[{"target":"203.0.113.7/32","origin":"automatic",
            "reason":"from_the_future","until_ms":2000}]}"#;
        let restored = from_file(serde_json::from_str(text).unwrap(), 1000, Instant::now());
        assert_eq!(restored[0].1.reason, BanReason::Manual);
        let reason = restored[0].2.as_ref().and_then(|n| n.reason.as_deref());
        assert_eq!(reason, Some("from_the_future"));
    }

    #[test]
    fn a_missing_file_is_no_bans_and_a_corrupt_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.json");
        assert!(load(&path).unwrap().is_empty());
        std::fs::write(&path, "{\"version\":1,\"bans\":[{").unwrap();
        assert!(load(&path).unwrap_err().is_corrupt());
        save(
            &path,
            &[held(
                "203.0.113.7/32",
                600,
                BanReason::Failures,
                None,
                Instant::now(),
            )],
        )
        .unwrap();
        assert_eq!(load(&path).unwrap().len(), 1);
    }
}
