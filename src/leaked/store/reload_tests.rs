//! Reloads cannot go back in time: two reloads of one filter run one at a
//! time, and the watcher remembers the file it read, not one written while
//! it read. A reader that pauses inside a reload orders them, without
//! sleeps.

use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use super::*;

/// A filter file holding `passwords`, written beside `path` and renamed
/// over it, as a deployment replaces a filter.
fn replace(path: &Path, passwords: &[&str]) {
    let fresh = path.with_extension("new");
    super::tests::save(&fresh, passwords);
    std::fs::rename(&fresh, path).unwrap();
}

/// What the paused read does once it has read the file.
enum Pause {
    /// Says it is half-way and waits for the word to go on.
    Wait(Sender<()>, Receiver<()>),
    /// Runs this, then goes on.
    Then(Box<dyn FnOnce() + Send>),
}

/// Filters whose `nth` read (the first is the start's) reads the file and
/// then pauses.
fn filters_pausing(path: &Path, nth: usize, pause: Pause) -> LeakedFilters {
    let calls = Mutex::new(0usize);
    let pause = Mutex::new(Some(pause));
    let read = move |path: &Path, kind| {
        let filter = Filter::load_kind(path, kind);
        let call = {
            let mut calls = calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if call == nth {
            match pause.lock().unwrap().take() {
                Some(Pause::Wait(entered, release)) => {
                    entered.send(()).unwrap();
                    release.recv().unwrap();
                }
                Some(Pause::Then(run)) => run(),
                None => {}
            }
        }
        filter
    };
    let config = config::Leaked {
        passwords_filter: Some(path.to_owned()),
        ..config::Leaked::default()
    };
    LeakedFilters::load_with(&config, Reader(Box::new(read))).unwrap()
}

fn items(filters: &LeakedFilters) -> u64 {
    filters.serving()[0].items
}

#[test]
fn a_reload_racing_another_cannot_leave_the_older_filter_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords.cgf");
    replace(&path, &["zero"]);
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let filters = filters_pausing(&path, 2, Pause::Wait(entered_tx, release_rx));
    assert_eq!(items(&filters), 1);

    // The watcher reads the first new file, and is held half-way.
    replace(&path, &["one", "one'"]);
    let watcher = {
        let filters = filters.clone();
        std::thread::spawn(move || filters.reload_changed())
    };
    entered.recv().unwrap();
    let slot = filters.inner.passwords.as_ref().unwrap();
    assert!(
        slot.seen.try_lock().is_err(),
        "a reload holds its filter from the read to the swap"
    );

    // Meanwhile the newest file arrives and an operator reloads.
    replace(&path, &["two", "two'", "two''"]);
    let admin = {
        let filters = filters.clone();
        std::thread::spawn(move || filters.reload())
    };
    release.send(()).unwrap();
    let watched = watcher.join().unwrap();
    let reloaded = admin.join().unwrap();
    assert_eq!(watched[0].result.as_ref().unwrap().items, 2);
    assert_eq!(reloaded[0].result.as_ref().unwrap().items, 3);
    assert_eq!(items(&filters), 3, "the newest file serves");
    assert!(
        filters.reload_changed().is_empty(),
        "the watcher knows the file the operator's reload read"
    );
}

#[test]
fn the_watcher_remembers_the_file_it_read_not_one_written_during_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords.cgf");
    replace(&path, &["zero"]);
    let during = {
        let path = path.clone();
        Pause::Then(Box::new(move || replace(&path, &["two", "two'", "two''"])))
    };
    let filters = filters_pausing(&path, 2, during);

    replace(&path, &["one", "one'"]);
    let first = filters.reload_changed();
    assert_eq!(first[0].result.as_ref().unwrap().items, 2);
    assert_eq!(items(&filters), 2, "the file as it was read");
    // The file now on disk is not the one read: the next watch reads it.
    let second = filters.reload_changed();
    assert_eq!(second.len(), 1, "the file written during the read is seen");
    assert_eq!(items(&filters), 3);
    assert!(filters.reload_changed().is_empty());
}
